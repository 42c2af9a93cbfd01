#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod support;
use std::io::Write;
use std::time::Instant;
use support::*;
use tenet_bundle::*;

fn gz_stream(f: impl FnOnce(&mut flate2::write::GzEncoder<Vec<u8>>)) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    f(&mut gz);
    gz.finish().unwrap()
}
fn hdr(name: &[u8], kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut t = RawTar::new();
    t.header(name, kind, size);
    let mut v = t.finish();
    v.truncate(512);
    v
}
fn zeros(w: &mut impl Write, mut n: u64, byte: u8) {
    let buf = vec![byte; 1 << 20];
    while n > 0 {
        let k = n.min(buf.len() as u64);
        w.write_all(&buf[..k as usize]).unwrap();
        n -= k;
    }
}

#[test]
fn exp() {
    let which = std::env::var("EXP").unwrap();
    let mb: u64 = std::env::var("MB")
        .map(|s| s.parse().unwrap())
        .unwrap_or(64);
    let l = Limits::default();
    let bytes = match which.as_str() {
        // GNU long name of `mb` MiB of 'a'
        "longname" => gz_stream(|w| {
            let n = mb << 20;
            w.write_all(&hdr(b"././@LongLink", tar::EntryType::GNULongName, n + 1))
                .unwrap();
            zeros(w, n, b'a');
            zeros(w, 1, 0);
            zeros(w, (512 - (n + 1) % 512) % 512, 0);
            w.write_all(&hdr(b"x", tar::EntryType::Regular, 0)).unwrap();
            zeros(w, 1024, 0);
        }),
        // PAX extension of `mb` MiB (one record with a huge comment)
        "pax" => gz_stream(|w| {
            let n = mb << 20;
            w.write_all(&hdr(b"pax", tar::EntryType::XHeader, n))
                .unwrap();
            zeros(w, n, b'a');
            w.write_all(&hdr(b"x", tar::EntryType::Regular, 0)).unwrap();
            zeros(w, 1024, 0);
        }),
        // directory entry with `mb` MiB of content (skipped, never counted)
        "dir" => gz_stream(|w| {
            let n = mb << 20;
            w.write_all(&hdr(b"d/", tar::EntryType::Directory, n))
                .unwrap();
            zeros(w, n, 0);
            zeros(w, 1024, 0);
        }),
        // PAX size overrides header size
        "paxsize" => gz_stream(|w| {
            let rec = b"13 size=22\n\n";
            let _ = rec;
            let content = b"package p\nallow := 1\n"; // 22 bytes
            let rec = format!(
                "{} size={}\n",
                8 + content.len().to_string().len() + 3,
                content.len()
            );
            let _ = rec;
            let rec = "11 size=22\n";
            assert_eq!(rec.len(), 11);
            w.write_all(&hdr(b"pax", tar::EntryType::XHeader, rec.len() as u64))
                .unwrap();
            w.write_all(rec.as_bytes()).unwrap();
            zeros(w, (512 - rec.len() as u64 % 512) % 512, 0);
            w.write_all(&hdr(b"policy.rego", tar::EntryType::Regular, 0))
                .unwrap();
            w.write_all(content).unwrap();
            zeros(w, 512 - content.len() as u64, 0);
            zeros(w, 1024, 0);
        }),
        "yaml" => {
            let n = mb as usize; // anchors list size and alias count
            let mut y = String::from("a: &a [");
            for i in 0..n {
                if i > 0 {
                    y.push(',');
                }
                y.push('1');
            }
            y.push_str("]\nb: [");
            for i in 0..n {
                if i > 0 {
                    y.push(',');
                }
                y.push_str("*a");
            }
            y.push_str("]\n");
            println!("yaml text {} bytes", y.len());
            tar_gz(&[("data.yaml", y.as_bytes())])
        }
        _ => panic!(),
    };
    println!("archive {} bytes", bytes.len());
    let t = Instant::now();
    let r = Bundle::from_tar_gz(&bytes, &l);
    println!(
        "{:?} in {:?}",
        r.as_ref()
            .map(|b| (
                b.files
                    .iter()
                    .map(|(p, n)| (p.len(), *n))
                    .collect::<Vec<_>>(),
                b.modules.len(),
                b.data.to_string().len()
            ))
            .map_err(|e| e.to_string()),
        t.elapsed()
    );
}
