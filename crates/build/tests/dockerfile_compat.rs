//! Dockerfiles written for BuildKit, checked offline: on the classic builder the stages a
//! target needs, lowered heredocs, cache mounts and platform arguments; on BuildKit only
//! what the engine's frontend lacks; build secrets read from mounts; what is refused with
//! its line.

use capstan_build::dockerfile_compat::{for_builder, for_classic_builder, BuilderKind, Compatible};
use capstan_build::dockerfile_scope::scope_for_app;

fn for_buildkit(text: &str) -> Result<Compatible, String> {
    for_builder(text, "Dockerfile", None, BuilderKind::BuildKit).map_err(|e| e.to_string())
}

#[test]
fn on_buildkit_mounts_stages_and_platforms_are_left_to_buildkit() {
    let text = "# syntax=docker/dockerfile:1.4\nFROM --platform=$BUILDPLATFORM busybox AS build\n\
                RUN --mount=type=cache,target=/c --mount=type=secret,id=npm <<EOF\nset -e\necho $TARGETARCH\nEOF\n\
                FROM build AS test\nRUN false\nFROM busybox\nCOPY --link --chmod=755 --from=build /x /x\n\
                RUN --network=default echo hi\n";
    let out = for_buildkit(text).unwrap();
    assert!(
        out.text.contains(
            r#"RUN --mount=type=cache,target=/c --mount=type=secret,id=npm ["/bin/sh","-c","set -e\necho $TARGETARCH\n"]"#
        ),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("RUN false"),
        "stages are BuildKit's to skip: {}",
        out.text
    );
    assert!(
        out.text.contains("COPY --chmod=755 --from=build /x /x"),
        "{}",
        out.text
    );
    assert!(out.text.contains("RUN echo hi"), "{}", out.text);
    assert!(!out.text.contains("syntax"), "{}", out.text);
    assert!(out.build_args.is_empty(), "{:?}", out.build_args);
    for expected in ["syntax", "heredoc", "--link", "--network=default"] {
        assert!(
            out.notes.iter().any(|n| n.contains(expected)),
            "{expected}: {:?}",
            out.notes
        );
    }
    for (text, expected) in [
        (
            "FROM x\nRUN --mount=type=ssh git clone x\n",
            "line 2: RUN --mount=type=ssh needs an SSH agent",
        ),
        (
            "FROM x\nRUN --network=none echo\n",
            "line 2: RUN --network=none is not supported",
        ),
        ("FROM x\nCOPY <<EOF /a\nhello\nEOF\n", "line 2: COPY <<EOF"),
        ("FROM x\nCOPY --parents a /a\n", "line 2: COPY --parents"),
    ] {
        let err = for_buildkit(text).unwrap_err();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn build_secrets_declared_as_args_are_read_from_their_mounts() {
    let text = "FROM busybox AS build\nARG TOKEN\nARG OTHER=1\nRUN --mount=type=cache,target=/c echo \"$TOKEN\"\n\
                RUN [\"sh\", \"-c\", \"echo $TOKEN\"]\nFROM busybox\nRUN echo final\n";
    let out = scope_for_app(text, "Dockerfile", &["TOKEN".into()], "cap/web", "s1")
        .unwrap()
        .expect("TOKEN is an ARG");
    assert!(
        out.text.contains(
            "RUN --mount=type=secret,id=TOKEN --mount=type=cache,target=/c,id=cap/web/c : build-secrets=s1; TOKEN=\"$(cat /run/secrets/TOKEN 2>/dev/null)\"; export TOKEN; echo \"$TOKEN\""
        ),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("RUN echo final"),
        "the next stage has no ARG TOKEN: {}",
        out.text
    );
    assert!(
        out.notes.iter().any(|n| n.contains("exec-form")),
        "{:?}",
        out.notes
    );
    assert!(
        out.notes.iter().any(|n| n.contains("secret mount")),
        "{:?}",
        out.notes
    );
    let untouched = scope_for_app(
        "FROM busybox\nRUN echo\n",
        "Dockerfile",
        &["TOKEN".into()],
        "cap/web",
        "s1",
    );
    assert_eq!(untouched.unwrap(), None);
    // Cache mounts are the app's own, whatever id the Dockerfile gives.
    let cached = scope_for_app(
        "FROM busybox\nRUN --mount=type=cache,id=npm,target=/root/.npm npm ci\n",
        "Dockerfile",
        &[],
        "cap/web",
        "s1",
    )
    .unwrap()
    .unwrap();
    assert!(
        cached
            .text
            .contains("RUN --mount=type=cache,target=/root/.npm,id=cap/web/npm npm ci"),
        "{}",
        cached.text
    );
}

fn lower(text: &str) -> Compatible {
    for_classic_builder(text, "Dockerfile", None).unwrap()
}

fn refused(text: &str) -> String {
    for_classic_builder(text, "Dockerfile", None)
        .unwrap_err()
        .to_string()
}

#[test]
fn unused_stages_are_dropped_and_numbers_follow() {
    let text = "ARG V=1\nFROM busybox AS deps\nRUN echo deps\n\nFROM deps AS test\nRUN false\n\nFROM busybox AS build\nCOPY --from=0 /x /x\n\nFROM scratch\nCOPY --from=build /x /y\n";
    let out = lower(text);
    assert!(!out.text.contains("RUN false"), "{}", out.text);
    assert!(
        out.text.starts_with("ARG V=1\nFROM busybox AS deps\n"),
        "{}",
        out.text
    );
    assert!(out.text.contains("COPY --from=0 /x /x"), "{}", out.text);
    assert!(
        out.notes.iter().any(|n| n.contains("not built: test")),
        "{:?}",
        out.notes
    );
    // A numeric reference moves with the stages kept.
    let text = "FROM busybox AS unused\nRUN false\nFROM busybox\nRUN echo a\nFROM scratch\nCOPY --from=1 /a /a\n";
    let out = lower(text);
    assert!(out.text.contains("COPY --from=0 /a /a"), "{}", out.text);
    // With a target, later stages go too.
    let out = for_classic_builder(text, "Dockerfile", Some("unused")).unwrap();
    assert_eq!(out.text, "FROM busybox AS unused\nRUN false\n");
}

#[test]
fn heredocs_cache_mounts_and_platform_args_are_lowered() {
    let text = "# syntax=docker/dockerfile:1.4\nFROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN --mount=type=cache,target=/root/.cache \\\n    echo building for $TARGETARCH\nRUN <<EOF\nset -e\necho \"one\" > /one\necho two\nEOF\nFROM scratch\nCOPY --from=build /one /one\n";
    let out = lower(text);
    assert!(
        out.text.starts_with("ARG BUILDPLATFORM=linux/"),
        "{}",
        out.text
    );
    assert!(
        out.build_args.contains_key("TARGETARCH"),
        "{:?}",
        out.build_args
    );
    assert!(!out.text.contains("--mount"), "{}", out.text);
    assert!(
        out.text.contains("echo building for $TARGETARCH"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains(r#"RUN ["/bin/sh","-c","set -e\necho \"one\" > /one\necho two\n"]"#),
        "{}",
        out.text
    );
    assert_eq!(out.notes.len(), 4, "{:?}", out.notes);
}

#[test]
fn what_needs_buildkit_is_refused_with_its_line() {
    for (text, expected) in [
        (
            "FROM x\nRUN --mount=type=secret,id=npm npm ci\n",
            "line 2: RUN --mount=type=secret",
        ),
        (
            "FROM x\n\nRUN --mount=type=ssh git clone x\n",
            "line 3: RUN --mount=type=ssh",
        ),
        ("FROM x\nCOPY --chmod=755 a /a\n", "line 2: COPY --chmod"),
        ("FROM x\nCOPY --link a /a\n", "COPY --link"),
        ("FROM x\nCOPY <<EOF /a\nhello\nEOF\n", "COPY <<EOF"),
        (
            "FROM x\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
            "#! line",
        ),
        ("FROM x\nRUN <<EOF\nnever ends\n", "unterminated"),
        ("FROM x\nRUN --network=none echo\n", "RUN --network=none"),
    ] {
        let err = refused(text);
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains("needs BuildKit"), "{err}");
    }
}

#[test]
fn a_plain_dockerfile_is_unchanged_but_for_comments() {
    let text = "FROM busybox\n# a comment\nRUN echo a && \\\n    echo b\nCMD [\"sh\"]\n";
    let out = lower(text);
    assert_eq!(
        out.text,
        "FROM busybox\nRUN echo a && \\\n    echo b\nCMD [\"sh\"]\n"
    );
    assert!(out.notes.is_empty());
}

#[test]
fn another_apps_image_is_refused_in_a_build() {
    use capstan_build::dockerfile_scope::{is_foreign_image, refuse_foreign_images};
    let scope = "cap/web";
    for foreign in [
        "cap/api:3",
        "docker.io/cap/api:3",
        "CAP/api/worker:1",
        "cap/api@sha256:ab",
    ] {
        assert!(is_foreign_image(foreign, scope), "{foreign}");
    }
    for own in [
        "cap/web:3",
        "cap/web/worker:2",
        "busybox:stable",
        "capx/api:1",
        "node:20",
    ] {
        assert!(!is_foreign_image(own, scope), "{own}");
    }
    for (text, line) in [
        ("FROM cap/api:3\n", 1),
        ("FROM busybox\nCOPY --from=cap/api:3 /app /app\n", 2),
        (
            "FROM busybox\nRUN --mount=type=bind,from=cap/api:3,target=/x ls /x\n",
            2,
        ),
        ("ARG BASE=cap/api:3\nFROM ${BASE}\n", 1),
    ] {
        let err = refuse_foreign_images(text, "Dockerfile", scope)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("Dockerfile line {line}: cap/api")),
            "{text}: {err}"
        );
        assert!(err.contains("another app's image"), "{err}");
    }
    refuse_foreign_images(
        "FROM busybox AS build\nFROM cap/web:2\nCOPY --from=build /x /x\n",
        "Dockerfile",
        scope,
    )
    .unwrap();
}

fn scoped(text: &str) -> String {
    scope_for_app(text, "Dockerfile", &[], "cap/web", "s1")
        .unwrap()
        .unwrap_or_else(|| panic!("nothing scoped in {text:?}"))
        .text
}

#[test]
fn cache_mounts_are_scoped_in_every_spelling() {
    let f = "FROM busybox\n";
    for (text, expected) in [
        (
            format!("{f}RUN --mount=TYPE=CACHE,ID=other/app/npm,TARGET=/c true\n"),
            "RUN --mount=TYPE=CACHE,TARGET=/c,id=cap/web/other/app/npm true",
        ),
        (
            format!("{f}RUN --mount=Type=Cache,Id=npm,Dst=/c true\n"),
            "RUN --mount=Type=Cache,Dst=/c,id=cap/web/npm true",
        ),
        // No id: BuildKit's default id is the target, in any of its spellings.
        (
            format!("{f}RUN --mount=type=cache,destination=/root/.npm true\n"),
            "RUN --mount=type=cache,destination=/root/.npm,id=cap/web/root/.npm true",
        ),
        (
            format!("{f}RUN --mount=type=cache,target=/c,id=a,ID=b true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/b true",
        ),
        (
            format!("{f}RUN --mount=type=cache,id=a,target=/c,id= true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/c true",
        ),
        // Quoted flag words and CSV fields, escapes, tabs.
        (
            format!("{f}RUN --mount=\"type=cache,id=x,target=/c\" true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("{f}RUN --mount=type=cache,\"id=x\",'target'=/c true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("{f}RUN --mount=ty\\pe=cache,i\\d=x,target=/c true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("{f}RUN\t--mount=type=cache,id=x,target=/c\ttrue\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        // The flag word's quotes are BuildKit's shell-like ones; a CSV-quoted field needs
        // them kept (inside single quotes).
        (
            format!("{f}RUN --mount='type=cache,\"id=a,b\",target=/c' true\n"),
            "RUN --\"mount=type=cache,target=/c,\\\"id=cap/web/a,b\\\"\" true",
        ),
        (
            format!("{f}RUN --mount=type=cache,id=x,\"target=/a b\" true\n"),
            "RUN --\"mount=type=cache,target=/a b,id=cap/web/x\" true",
        ),
        // Where BuildKit's parser joins lines: a blank line in a continuation, an
        // indented or lower-case keyword, the backtick escape directive, ONBUILD.
        (
            format!("{f}RUN \\\n\n  --mount=type=cache,id=x,target=/c \\\n# c\n  true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("{f}  run --mount=type=cache,id=x,target=/c true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("# escape=`\n{f}RUN `\n  --mount=type=cache,id=x,target=/c true\n"),
            "RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
        (
            format!("{f}ONBUILD RUN --mount=type=cache,id=x,target=/c true\n"),
            "ONBUILD RUN --mount=type=cache,target=/c,id=cap/web/x true",
        ),
    ] {
        let out = scoped(&text);
        assert!(out.contains(expected), "{text:?} became {out:?}");
    }
    // The escape directive stays with the file it was read with.
    assert!(scoped(&format!(
        "# escape=`\n{f}RUN --mount=type=cache,target=/c true\n"
    ))
    .starts_with("# escape=`\n"));
}

#[test]
fn mounts_that_cannot_be_read_safely_are_refused() {
    let f = "FROM busybox\n";
    for (text, expected) in [
        (
            format!("{f}ARG T=cache\nRUN --mount=type=$T,id=x,target=/c true\n"),
            "line 3: RUN --mount=type=$T,id=x,target=/c: a mount type taken from a variable",
        ),
        (
            format!("{f}RUN --mount='type=cache,id=x\"y,target=/c' true\n"),
            "line 2: RUN --mount=type=cache,id=x\"y,target=/c (a quote inside an unquoted",
        ),
        (
            format!("{f}RUN --mount=type=cache,id=\u{e0},target=/c true\n"),
            "line 2: RUN flags (a flag holds a non-ASCII character",
        ),
        (
            format!("{f}RUN --mount=TYPE=SECRET,ID=TOKEN [\"cat\", \"/run/secrets/TOKEN\"]\n"),
            "line 2: an exec-form RUN that mounts a build secret",
        ),
    ] {
        let err = scope_for_app(&text, "Dockerfile", &["TOKEN".into()], "cap/web", "s1")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
    // A shell-form step that only starts with `[` is not exec form: it is stamped.
    let out = scope_for_app(
        &format!("{f}RUN --mount=TYPE=SECRET,ID=TOKEN [ -f /run/secrets/TOKEN ] && true\n"),
        "Dockerfile",
        &[],
        "cap/web",
        "s1",
    )
    .unwrap()
    .unwrap();
    assert!(
        out.text.contains(
            "RUN --mount=TYPE=SECRET,ID=TOKEN : build-secrets=s1; [ -f /run/secrets/TOKEN ]"
        ),
        "{}",
        out.text
    );
}

#[test]
fn another_apps_image_is_refused_in_every_spelling() {
    use capstan_build::dockerfile_scope::refuse_foreign_images;
    let f = "FROM busybox\n";
    for text in [
        format!("{f}RUN --mount=type=bind,FROM=cap/api:3,target=/x ls\n"),
        format!("{f}RUN --mount=\"type=bind,from=cap/api:3,target=/x\" ls\n"),
        format!("{f}RUN --mount=type=bind,\"from=cap/api:3\",target=/x ls\n"),
        format!("{f}RUN --mount=type=bind,fr\\om=cap/api:3,target=/x ls\n"),
        format!("{f}RUN --mount=type=bind,from='cap/api:3',target=/x ls\n"),
        format!("{f}RUN --mount=TYPE=CACHE,From=cap/api,target=/x ls\n"),
        format!("{f}COPY --from=\"cap/api:3\" /a /a\n"),
        format!("{f}  copy --from=cap/api:3 /a /a\n"),
        format!("{f}COPY \\\n\n  --from=cap/api:3 /a /a\n"),
        format!("{f}ONBUILD COPY --from=cap/api:3 /a /a\n"),
        format!("{f}ONBUILD RUN --mount=type=bind,from=cap/api:3,target=/x ls\n"),
        "FROM \"cap/api:3\"\n".to_string(),
        "FROM cap\\/api:3\n".to_string(),
        format!("ARG BASE=\"cap/api:3\"\n{f}"),
    ] {
        let err = refuse_foreign_images(&text, "Dockerfile", "cap/web")
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains("cap/api"), "{text:?}: {err}");
        assert!(err.contains("another app's image"), "{text:?}: {err}");
    }
}

#[test]
fn another_apps_image_named_through_build_arguments_is_refused() {
    use capstan_build::dockerfile_scope::refuse_foreign_images_with_args;
    use std::collections::BTreeMap;
    let none = BTreeMap::new();
    let base = BTreeMap::from([("BASE".to_string(), "cap/api:3".to_string())]);
    let part = BTreeMap::from([("NAME".to_string(), "api:3".to_string())]);
    for (text, args, expected) in [
        (
            "ARG A=cap\nARG B=/api:3\nFROM ${A}${B}\n",
            &none,
            "line 3: cap/api:3",
        ),
        (
            "ARG A=cap\nFROM ${A}/${NAME:-api}\n",
            &none,
            "line 2: cap/api",
        ),
        (
            "ARG A=cap\nARG B=${A}/api\nFROM $B\n",
            &none,
            "line 2: cap/api",
        ),
        (
            "ARG BASE\nFROM $BASE\n",
            &base,
            "build argument BASE: cap/api:3",
        ),
        ("ARG NAME\nFROM cap/${NAME}\n", &part, "line 2: cap/api:3"),
    ] {
        let err = refuse_foreign_images_with_args(text, "Dockerfile", "cap/web", args)
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains(expected), "{text:?}: {err}");
        assert!(err.contains("another app's image"), "{text:?}: {err}");
    }
    let own = BTreeMap::from([("NAME".to_string(), "web:2".to_string())]);
    refuse_foreign_images_with_args(
        "ARG NAME\nFROM cap/${NAME}\n",
        "Dockerfile",
        "cap/web",
        &own,
    )
    .unwrap();
}
