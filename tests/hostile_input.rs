//! Hostile documents through `faxgate convert`: each is rejected with a reason, and
//! the converting process stays within a fixed memory bound whatever the input claims.

use std::io::Write;
use std::process::Command;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use lopdf::{Document, Object, Stream, dictionary};

/// Peak memory the converter may use on any of these inputs: room for the 60 MB input
/// it reads and the 64 MiB limit on one decompressed stream, far below what the
/// inputs claim (256 MiB of content, 100000 pages).
const MAX_PEAK_RSS_MIB: i64 = 200;

fn samples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples")
}

/// Builds a one-page PDF whose Pages dictionary claims `count` pages and whose page
/// content is `compressed_content`, marked `/FlateDecode`.
fn pdf_with(count: i64, compressed_content: Vec<u8>) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut stream = Stream::new(dictionary! { "Filter" => "FlateDecode" }, compressed_content);
    stream.allows_compression = false;
    let content_id = doc.add_object(stream);
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => count }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Builds a one-page PDF whose content stream inflates to 256 MiB of spaces.
fn flate_bomb() -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&block).unwrap();
    }
    pdf_with(1, encoder.finish().unwrap())
}

fn random_bytes(len: usize) -> Vec<u8> {
    // xorshift: incompressible enough, and the same bytes on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Peak resident memory of all waited-for children so far, in MiB.
fn children_peak_rss_mib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete rusage into the pointer it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    usage.ru_maxrss / 1024
}

#[test]
fn hostile_documents_rejected_in_bounded_memory() {
    let folder = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bomb.pdf", flate_bomb(), "the content of page 1 cannot be decoded"),
        ("count-lie.pdf", pdf_with(100_000, zlib(b"BT ET")), "declares 100000 pages but contains 1"),
        (
            "pages-loop.pdf",
            std::fs::read(samples().join("pdf/qpdf-pages-loop.pdf")).unwrap(),
            "pages-loop.pdf",
        ),
        (
            "ifd-loop.tiff",
            std::fs::read(samples().join("tiff/pillow-ifd-loop-multipage.tiff")).unwrap(),
            "loop",
        ),
        ("random.pdf", random_bytes(60_000_000), "random.pdf"),
    ];
    for (name, bytes, expected) in cases {
        let input = folder.path().join(name);
        std::fs::write(&input, &bytes).unwrap();
        let output = folder.path().join("out.pdf");
        let result = Command::new(env!("CARGO_BIN_EXE_faxgate"))
            .arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{name} was not rejected: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!output.exists(), "{name}: a PDF was written");
        let peak = children_peak_rss_mib();
        assert!(peak < MAX_PEAK_RSS_MIB, "{name}: peak RSS {peak} MiB");
    }
}
