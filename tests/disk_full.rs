//! A full disk, for real: the data directory on a small tmpfs. Ingest is refused with 503 and
//! `Retry-After` while the WAL cannot grow, nothing acknowledged is lost (also across a kill -9),
//! and ingest resumes by itself once space returns. Mounting needs root (CI runs as root);
//! where it is not permitted the test fails, saying why.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, eventually};
use reqwest::blocking::Client;
use serde_json::json;

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` at `at`; fails the test where mounting is not permitted (not root,
/// or a container without the capability).
fn mount_tmpfs(at: &Path, size: &str) -> Mounted {
    std::fs::create_dir_all(at).unwrap();
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .expect("run mount");
    if !output.status.success() {
        panic!(
            "mounting a tmpfs to fill a disk failed (the test needs root, as CI has): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Mounted(at.to_path_buf())
}

/// 200 spans of trace `n`, each with 1 KiB of attribute.
fn batch(n: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans: Vec<_> = (0..200u64)
        .map(|i| {
            json!({"traceId": format!("{:032x}", n + 1), "spanId": format!("{:016x}", i + 1),
                   "name": "fill", "startTimeUnixNano": now.to_string(),
                   "endTimeUnixNano": (now + 1000).to_string(),
                   "attributes": [{"key": "payload", "value": {"stringValue": "x".repeat(1024)}}]})
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fill"}}]},
        "scopeSpans": [{"spans": spans}]
    }]})
    .to_string()
}

#[test]
fn a_full_disk_asks_clients_to_retry_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _mounted = mount_tmpfs(&mnt, "24m");
    // Space to give back later.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 8 << 20]).unwrap();
    let mut server = Server::start_with(&mnt.join("data"), &["--flush-interval", "1h"]);
    let client = Client::new();
    let post = |n: u64| {
        client
            .post(server.otlp_http_url())
            .header("content-type", "application/json")
            .body(batch(n))
            .send()
            .unwrap()
    };

    let mut acked = 0;
    let mut n = 0;
    let refused = loop {
        assert!(n < 500, "the disk never filled");
        let response = post(n);
        n += 1;
        if response.status() == 200 {
            acked += 200;
            continue;
        }
        break response;
    };
    assert_eq!(refused.status(), 503);
    let retry_after = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    let text = refused.text().unwrap();
    assert!(text.contains("disk is full"), "{text}");
    assert!(acked > 0);
    assert_eq!(
        server.count("spans"),
        acked,
        "everything acknowledged is there"
    );

    // Space returns: the next attempts succeed without a restart.
    std::fs::remove_file(&filler).unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        let ok = post(n).status() == 200;
        n += 1;
        if ok {
            acked += 200;
        }
        ok
    }));
    assert_eq!(server.count("spans"), acked);

    // And it survives a crash: the WAL holds exactly what was acknowledged.
    server.kill9();
    server.restart();
    assert_eq!(server.count("spans"), acked);
    assert!(
        server.log().contains("disk is full"),
        "the refusal is logged"
    );
}
