//! Disk trouble under a real `eddy serve`: its data directory is on a small ext4 filesystem
//! (a loop device) that fills up, or that the kernel turns read-only under it (ext4's
//! `errors=remount-ro`, triggered through sysfs, exactly what a failing disk does). While an
//! idempotent `acks=all` producer (librdkafka) streams numbered records: produce then fails
//! with Kafka's storage error, the server keeps serving reads and metadata, every acknowledged
//! record can be read; and after the filesystem is repaired (grown, or checked and mounted
//! again) and the server restarted, every acknowledged record is there once and in order and
//! produce works again.
//!
//! Needs root (or sudo) for `mount`, and e2fsprogs; `./scripts/test` installs e2fsprogs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{check_numbered, create_topic, read_numbered, serve_with, stop, Proc};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

const TOPIC: &str = "disk";
const PARTITIONS: i32 = 3;
const ARGS: &[&str] = &["--context-strategy", "off", "--durability", "sync"];

/// Runs a system command (through sudo when not root); panics with its output on failure.
fn sys(args: &[&str]) -> String {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.args(args);
        c
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (the disk tests need root and e2fsprogs)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ext4 filesystem in an image file, mounted on a loop device; unmounted when dropped.
struct SmallDisk {
    image: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

impl SmallDisk {
    fn new(root: &Path, mib: u64) -> SmallDisk {
        let image = root.join("disk.img");
        let dir = root.join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(mib << 20).unwrap();
        drop(f);
        sys(&["mkfs.ext4", "-q", "-F", image.to_str().unwrap()]);
        let mut disk = SmallDisk {
            image,
            dir,
            mounted: false,
        };
        disk.mount();
        disk
    }

    fn mount(&mut self) {
        sys(&[
            "mount",
            "-o",
            "loop,errors=remount-ro",
            self.image.to_str().unwrap(),
            self.dir.to_str().unwrap(),
        ]);
        self.mounted = true;
        sys(&["chmod", "777", self.dir.to_str().unwrap()]);
    }

    fn umount(&mut self) {
        sys(&["umount", self.dir.to_str().unwrap()]);
        self.mounted = false;
    }

    /// The loop device's name (`loop3`), as ext4's sysfs directory names it.
    fn device(&self) -> String {
        let src = sys(&["findmnt", "-n", "-o", "SOURCE", self.dir.to_str().unwrap()]);
        src.trim().trim_start_matches("/dev/").to_owned()
    }

    /// What the kernel does when ext4 meets an I/O error with `errors=remount-ro`: the
    /// filesystem turns read-only under every open file.
    fn fail(&self) {
        let knob = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device());
        sys(&["sh", "-c", &format!("echo disk-test > {knob}")]);
    }

    /// Checks (and repairs) the filesystem while unmounted, growing it to `mib` first.
    fn repair(&mut self, grow_to_mib: Option<u64>) {
        self.umount();
        if let Some(mib) = grow_to_mib {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.image)
                .unwrap();
            f.set_len(mib << 20).unwrap();
        }
        // e2fsck exits 1 when it fixed something (the error flag a forced error leaves).
        let image = self.image.to_str().unwrap();
        let _ = Command::new("e2fsck").args(["-f", "-y", image]).output();
        sys(&["e2fsck", "-f", "-y", image]);
        if grow_to_mib.is_some() {
            sys(&["resize2fs", image]);
        }
        self.mount();
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Acknowledged sequence numbers, and the errors the producer was told.
#[derive(Clone, Default)]
struct Deliveries {
    acked: Arc<Mutex<Vec<u64>>>,
    errors: Arc<Mutex<Vec<KafkaError>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(_) => self.acked.lock().unwrap().push(*seq),
            Err((e, _)) => self.errors.lock().unwrap().push(e.clone()),
        }
    }
}

fn value(seq: u64) -> String {
    format!("{seq:<1000}")
}

/// A record's delivery timeout while the disk is in trouble: short, so that the producer is
/// refused soon after the disk fails.
const TROUBLE_TIMEOUT: &str = "6000";
/// After the repair, produce must work, with no record refused; this is a correctness check,
/// not a latency one (the restarted server and a loaded CI machine may take seconds), so the
/// producer's own default-like patience applies.
const REPAIRED_TIMEOUT: &str = "60000";

/// Streams numbered 1000-byte records (idempotent, acks=all) until `stop_when` says so; then
/// waits for every outstanding delivery.
fn stream(
    boot: &str,
    from: u64,
    d: &Deliveries,
    message_timeout_ms: &str,
    mut stop_when: impl FnMut(&Deliveries, Duration) -> bool,
) -> u64 {
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", message_timeout_ms)
        .create_with_context(d.clone())
        .unwrap();
    let started = Instant::now();
    let mut seq = from;
    while !stop_when(d, started.elapsed()) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the stream never met its stop condition"
        );
        let v = value(seq);
        let p = (seq % PARTITIONS as u64) as i32;
        match producer.send(
            BaseRecord::<(), str, Box<u64>>::with_opaque_to(TOPIC, Box::new(seq))
                .partition(p)
                .payload(&v),
        ) {
            Ok(()) => {
                seq += 1;
                if seq % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    producer.flush(Duration::from_secs(90)).unwrap();
    seq
}

/// A burst of 1000-byte records sent with no retries to every partition; the errors they got
/// (each record is either acknowledged or refused).
fn probe(boot: &str) -> Vec<KafkaError> {
    let d = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "20000")
        .create_with_context(d.clone())
        .unwrap();
    let payload = format!("{:<1000}", "probe");
    for i in 0..300u64 {
        producer
            .send(
                BaseRecord::<(), str, Box<u64>>::with_opaque_to(TOPIC, Box::new(u64::MAX))
                    .partition((i % PARTITIONS as u64) as i32)
                    .payload(&payload),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let errors = d.errors.lock().unwrap().clone();
    assert_eq!(d.acked.lock().unwrap().len() + errors.len(), 300);
    errors
}

fn is_storage_error(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::KafkaStorageError)
}

/// After the trouble: the server still answers metadata and reads, produce gets the storage
/// error; then the disk is repaired, the server restarted, nothing acknowledged is lost and
/// produce works again.
fn after_trouble(
    server: Proc,
    boot: &str,
    disk: &mut SmallDisk,
    d: &Deliveries,
    next_seq: u64,
    grow_to_mib: Option<u64>,
) {
    // Refused with Kafka's storage error, at once: not timed out waiting for followers
    // whose disks failed too.
    let errors = probe(boot);
    assert!(
        !errors.is_empty(),
        "a burst to a broken disk was all acknowledged"
    );
    for e in &errors {
        assert!(is_storage_error(e), "produce failed with {e:?}");
    }
    let acked = d.acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "only {} acknowledged", acked.len());
    let log = read_numbered(boot, TOPIC, PARTITIONS, &acked);
    check_numbered(&log, &acked);
    stop(server);
    disk.repair(grow_to_mib);
    let (server, boot, _) = serve_with(&disk.data(), ARGS);
    let restarted = Instant::now();
    let log = read_numbered(&boot, TOPIC, PARTITIONS, &acked);
    check_numbered(&log, &acked);
    eprintln!("restarted; all read back in {:?}", restarted.elapsed());
    // Produce works again.
    let more = Deliveries::default();
    let end = stream(&boot, next_seq, &more, REPAIRED_TIMEOUT, |d, _| {
        d.acked.lock().unwrap().len() >= 100
    });
    eprintln!(
        "produced {} more, {} acknowledged, {:?} after the restart",
        end - next_seq,
        more.acked.lock().unwrap().len(),
        restarted.elapsed()
    );
    let refused = more.errors.lock().unwrap().clone();
    assert!(
        refused.is_empty(),
        "produce after the repair was refused {} times, first: {:?}",
        refused.len(),
        refused.first()
    );
    let mut all = acked;
    all.extend(more.acked.lock().unwrap().iter().copied());
    let log = read_numbered(&boot, TOPIC, PARTITIONS, &all);
    check_numbered(&log, &all);
    assert!(end > next_seq);
    stop(server);
}

#[test]
fn a_full_disk_refuses_produce_keeps_reads_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = SmallDisk::new(tmp.path(), 48);
    let (server, boot, http) = serve_with(&disk.data(), ARGS);
    create_topic(&http, TOPIC, PARTITIONS as u32);
    let d = Deliveries::default();
    // Until the producer has been refused for a while.
    let mut first_error: Option<Duration> = None;
    let next = stream(&boot, 0, &d, TROUBLE_TIMEOUT, |d, t| {
        if first_error.is_none() && !d.errors.lock().unwrap().is_empty() {
            first_error = Some(t);
        }
        first_error.is_some_and(|e| t > e + Duration::from_secs(1))
    });
    let errors = d.errors.lock().unwrap().clone();
    eprintln!(
        "{} acknowledged, {} refused, first: {:?}",
        d.acked.lock().unwrap().len(),
        errors.len(),
        errors.first()
    );
    after_trouble(server, &boot, &mut disk, &d, next, Some(128));
}

#[test]
fn a_disk_turned_read_only_refuses_produce_keeps_reads_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = SmallDisk::new(tmp.path(), 128);
    let (server, boot, http) = serve_with(&disk.data(), ARGS);
    create_topic(&http, TOPIC, PARTITIONS as u32);
    let d = Deliveries::default();
    let mut failed = false;
    let next = stream(&boot, 0, &d, TROUBLE_TIMEOUT, |d, t| {
        if !failed && d.acked.lock().unwrap().len() > 2000 {
            disk.fail();
            failed = true;
        }
        failed && t > Duration::from_secs(1) && !d.errors.lock().unwrap().is_empty()
    });
    after_trouble(server, &boot, &mut disk, &d, next, None);
}
