//! Image transfer between two real engines without a registry: the main engine and the
//! second host's own engine (`SecondHost`, another dockerd in its own network namespace).
//! A redeploy after a one-line change sends about the changed layer, not the image; a
//! destination that lacks every layer gets them all; the image runs there either way.

mod support;

use capstan_engine::transfer::{chain_ids, send_image, spool_image, TransferError};
use capstan_engine::EngineError;
use std::time::Instant;
use support::{build, files, run_output, Fixture};

/// The late layer a one-line change rebuilds: 256 KiB of source text.
const APP_LINES: usize = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_line_change_sends_only_the_changed_layer() {
    let fx = Fixture::new("change").await;
    let tag = fx.name("app");
    let dockerfile = "FROM busybox:stable\nCOPY big.bin /data/big.bin\nCOPY app.txt /app/app.txt\n\
                      CMD [\"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let big = support::random_bytes(4 * 1024 * 1024);
    let v1 = build(
        &fx.main,
        &tag,
        &files(dockerfile, &big, &support::app_text("release 1", APP_LINES)),
    )
    .await;
    fx.remember(&v1);

    let started = Instant::now();
    let first = send_image(&fx.main, &fx.second, &tag, &fx.spool)
        .await
        .unwrap();
    let first_time = started.elapsed();
    eprintln!("first send: {first:?} in {first_time:?}");
    assert_eq!(first.image_id, v1);
    assert!(!first.already_present);
    let base = support::layer_count(&fx.second_docker, "busybox:stable").await;
    assert_eq!(
        first.layers_skipped, base,
        "busybox:stable is on the second engine already"
    );
    assert_eq!(first.layers_sent, 2);
    assert!(first.bytes_sent > 4 * 1024 * 1024);
    assert_eq!(run_output(&fx.second_docker, &tag).await, "release 1");
    fx.assert_spool_empty();

    // One line changed in the last layer: the rebuild reuses the earlier ones.
    let v2 = build(
        &fx.main,
        &tag,
        &files(dockerfile, &big, &support::app_text("release 2", APP_LINES)),
    )
    .await;
    fx.remember(&v2);
    assert_ne!(v1, v2);
    let started = Instant::now();
    let second = send_image(&fx.main, &fx.second, &tag, &fx.spool)
        .await
        .unwrap();
    let second_time = started.elapsed();
    let ratio = second.bytes_sent as f64 / second.changed_layer_bytes as f64;
    eprintln!(
        "second send: {second:?} in {second_time:?}\n  bytes sent {} vs changed layer {} (ratio {ratio:.3}); full export {}, first send {}",
        second.bytes_sent, second.changed_layer_bytes, second.export_bytes, first.bytes_sent
    );
    assert_eq!(second.image_id, v2);
    assert_eq!((second.layers_sent, second.layers_skipped), (1, base + 1));
    assert!(ratio <= 1.2, "sent {ratio:.3}× the changed layer");
    assert!(
        second.bytes_sent * 10 < second.export_bytes,
        "{} bytes sent of a {}-byte image",
        second.bytes_sent,
        second.export_bytes
    );
    assert_eq!(run_output(&fx.second_docker, &tag).await, "release 2");

    // Sent again: the destination has the image, only the tag is checked.
    let again = send_image(&fx.main, &fx.second, &tag, &fx.spool)
        .await
        .unwrap();
    assert!(again.already_present);
    assert_eq!(again.bytes_sent, 0);
    fx.assert_spool_empty();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_lacking_every_layer_gets_the_whole_image() {
    let fx = Fixture::new("whole").await;
    let tag = fx.name("scratch");
    // The first layer is this test's own random file, so no chain exists anywhere else.
    let dockerfile = "FROM scratch\nCOPY big.bin /data/big.bin\nCOPY --from=busybox:stable /bin/busybox /bin/busybox\n\
                      COPY app.txt /app/app.txt\nCMD [\"/bin/busybox\", \"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let big = support::random_bytes(1024 * 1024);
    let id = build(
        &fx.main,
        &tag,
        &files(dockerfile, &big, &support::app_text("whole image", 16)),
    )
    .await;
    fx.remember(&id);

    let started = Instant::now();
    let report = send_image(&fx.main, &fx.second, &tag, &fx.spool)
        .await
        .unwrap();
    eprintln!("whole image: {report:?} in {:?}", started.elapsed());
    assert_eq!((report.layers_sent, report.layers_skipped), (3, 0));
    assert!(report.changed_layer_bytes > 1024 * 1024);
    assert!(report.bytes_sent <= report.export_bytes);
    assert!(report.bytes_sent >= report.changed_layer_bytes);
    assert_eq!(run_output(&fx.second_docker, &tag).await, "whole image");
    fx.assert_spool_empty();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_image_is_a_typed_error_and_leaves_nothing() {
    let fx = Fixture::new("unknown").await;
    let missing = fx.name("missing");
    let before = fx
        .second_docker
        .list_images::<String>(None)
        .await
        .unwrap()
        .len();
    let err = send_image(&fx.main, &fx.second, &missing, &fx.spool)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::Transfer(TransferError::UnknownImage { reference }) if *reference == missing
        ),
        "{err:?}"
    );
    fx.assert_spool_empty();
    let on_second = fx.second.image_id(&missing).await.unwrap();
    assert_eq!(on_second, None);
    let after = fx
        .second_docker
        .list_images::<String>(None)
        .await
        .unwrap()
        .len();
    eprintln!("unknown image: {err} (second engine: {before} images before, {after} after)");
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_spooled_once_serves_several_engines_and_a_stale_layer_list_resends_whole() {
    let fx = Fixture::new("spooled").await;
    let tag = fx.name("app");
    let dockerfile = "FROM busybox:stable\nCOPY big.bin /data/big.bin\nCOPY app.txt /app/app.txt\n\
                      CMD [\"head\", \"-n\", \"1\", \"/app/app.txt\"]\n";
    let big = support::random_bytes(512 * 1024);
    let context = files(dockerfile, &big, &support::app_text("spooled", 16));
    let id = build(&fx.main, &tag, &context).await;
    fx.remember(&id);

    let spooled = spool_image(&fx.main, &tag, &fx.spool).await.unwrap();
    assert_eq!(spooled.image_id(), id);
    assert_eq!(
        std::fs::read_dir(&fx.spool).unwrap().count(),
        1,
        "the export alone"
    );
    // The source engine itself has it: nothing sent.
    assert!(spooled.send_to(&fx.main).await.unwrap().already_present);

    // A list claiming the second engine holds every layer but the last, when it lacks
    // this image's own layers too: the load fails, the whole image follows.
    let main_docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let layers = support::layers(&main_docker, &id).await;
    let chains = chain_ids(&layers);
    let claimed = chains[..chains.len() - 1].iter().cloned().collect();
    let report = spooled.send_given(&fx.second, &claimed).await.unwrap();
    eprintln!("stale layer list: {report:?}");
    assert!(report.resent_whole);
    assert_eq!(report.layers_sent, layers.len());
    assert!(report.bytes_sent > spooled.export_bytes());
    assert_eq!(run_output(&fx.second_docker, &tag).await, "spooled");
    assert_eq!(
        std::fs::read_dir(&fx.spool).unwrap().count(),
        1,
        "the export alone"
    );
    drop(spooled);
    fx.assert_spool_empty();
    fx.cleanup().await;
}
