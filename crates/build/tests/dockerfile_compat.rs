//! Dockerfiles written for BuildKit, checked offline: the stages a target needs, lowered
//! heredocs, cache mounts and platform arguments, and what is refused with its line.

use capstan_build::dockerfile_compat::{for_classic_builder, Compatible};

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
