//! TIFF input through `faxgate convert` and the document pipeline: CCITT data passed
//! through byte for byte and rendered like tiff2pdf's output, page sizes from the
//! resolution, page counts from the IFD chain, and hostile files rejected quickly.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faxgate::documents::{DocumentError, Limits, files_to_pdf};
use lopdf::{Document, Stream};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/tiff");

fn sample_path(name: &str) -> PathBuf {
    Path::new(SAMPLES).join(name)
}

fn sample(name: &str) -> Vec<u8> {
    let path = sample_path(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read sample {}: {error}", path.display()))
}

/// Runs `faxgate convert` on one sample and returns the PDF it wrote.
fn convert_with_binary(name: &str, folder: &Path) -> PathBuf {
    let output = folder.join(format!("{name}.pdf"));
    let run = Command::new(env!("CARGO_BIN_EXE_faxgate"))
        .env("FAXGATE_CONFIG", "")
        .args(["convert", sample_path(name).to_str().unwrap(), "-o", output.to_str().unwrap()])
        .output()
        .expect("faxgate runs");
    assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
    output
}

/// The strips of the first IFD: offset and byte count, with FillOrder.
struct Strips {
    strips: Vec<(usize, usize)>,
    fill_order: u32,
}

/// Reads StripOffsets, StripByteCounts and FillOrder of the first IFD.
fn first_ifd_strips(data: &[u8]) -> Strips {
    let little = data.starts_with(b"II");
    let u16_at = |at: usize| {
        let bytes = [data[at], data[at + 1]];
        if little { u16::from_le_bytes(bytes) } else { u16::from_be_bytes(bytes) }
    };
    let u32_at = |at: usize| {
        let bytes = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if little { u32::from_le_bytes(bytes) } else { u32::from_be_bytes(bytes) }
    };
    let ifd = u32_at(4) as usize;
    let mut offsets = Vec::new();
    let mut counts = Vec::new();
    let mut fill_order = 1;
    for index in 0..usize::from(u16_at(ifd)) {
        let at = ifd + 2 + index * 12;
        let (tag, field_type, count) = (u16_at(at), u16_at(at + 2), u32_at(at + 4) as usize);
        if ![273, 279, 266].contains(&tag) {
            continue;
        }
        let size = if field_type == 3 { 2 } else { 4 };
        let values_at = if size * count <= 4 { at + 8 } else { u32_at(at + 8) as usize };
        let values: Vec<usize> = (0..count)
            .map(|i| if size == 2 { usize::from(u16_at(values_at + i * 2)) } else { u32_at(values_at + i * 4) as usize })
            .collect();
        match tag {
            273 => offsets = values,
            279 => counts = values,
            266 => fill_order = values[0] as u32,
            _ => {}
        }
    }
    Strips { strips: offsets.into_iter().zip(counts).collect(), fill_order }
}

/// Returns the image XObjects of each page, in the order the page draws them.
fn page_images(document: &Document) -> Vec<Vec<Stream>> {
    document
        .get_pages()
        .values()
        .map(|&page_id| {
            let page = document.get_dictionary(page_id).unwrap();
            let resources = page.get_deref(b"Resources", document).unwrap().as_dict().unwrap();
            let xobjects = resources.get_deref(b"XObject", document).unwrap().as_dict().unwrap();
            let mut named: Vec<(usize, Stream)> = xobjects
                .iter()
                .map(|(name, reference)| {
                    let number: usize = String::from_utf8_lossy(&name[2..]).parse().unwrap();
                    let stream = document.get_object(reference.as_reference().unwrap()).unwrap().as_stream().unwrap();
                    (number, stream.clone())
                })
                .collect();
            named.sort_by_key(|(number, _)| *number);
            named.into_iter().map(|(_, stream)| stream).collect()
        })
        .collect()
}

fn decode_parms(stream: &Stream) -> lopdf::Dictionary {
    stream.dict.get(b"DecodeParms").unwrap().as_dict().unwrap().clone()
}

/// Renders one page as an 8-bit gray bitmap scaled to 300 x 400 pixels, and returns it
/// with what pdftoppm wrote to stderr (its decoding errors).
fn render(pdf: &Path, page: usize) -> (Vec<u8>, String) {
    let output = Command::new("pdftoppm")
        .args(["-gray", "-r", "50", "-scale-to-x", "300", "-scale-to-y", "400"])
        .args(["-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .output()
        .expect("pdftoppm runs (install poppler-utils)");
    assert!(output.status.success(), "pdftoppm failed on {}", pdf.display());
    // A binary PGM: "P5\n300 400\n255\n" and then the samples.
    let mut fields = 0;
    let mut start = 0;
    for (index, &byte) in output.stdout.iter().enumerate() {
        if byte == b'\n' {
            fields += 1;
            if fields == 3 {
                start = index + 1;
                break;
            }
        }
    }
    (output.stdout[start..].to_vec(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Returns the share of pixels whose gray levels differ by more than a quarter.
fn difference_ratio(first: &[u8], second: &[u8]) -> f64 {
    assert_eq!(first.len(), second.len());
    let differing = first.iter().zip(second).filter(|(a, b)| a.abs_diff(**b) > 64).count();
    differing as f64 / first.len() as f64
}

fn tiff2pdf(name: &str, folder: &Path) -> PathBuf {
    let output = folder.join(format!("{name}.tiff2pdf.pdf"));
    let run = Command::new("tiff2pdf")
        .arg("-o")
        .arg(&output)
        .arg(sample_path(name))
        .output()
        .expect("tiff2pdf runs (install libtiff-tools)");
    assert!(run.status.success(), "tiff2pdf failed on {name}: {}", String::from_utf8_lossy(&run.stderr));
    output
}

/// Checks that the first page's images pass its strips through: each image contains the
/// bytes of one or more consecutive whole strips (bit-reversed for FillOrder 2) and as
/// many rows, and together they contain every strip in order. Returns the images and,
/// for each, the number of strips it contains.
fn assert_strips_passed_through(name: &str, pdf: &Path) -> (Vec<Stream>, Vec<usize>) {
    let data = sample(name);
    let strips = first_ifd_strips(&data);
    let rows_per_strip = first_ifd_value(&data, 278).unwrap_or(u32::MAX) as usize;
    let document = Document::load(pdf).unwrap();
    let images = page_images(&document).remove(0);
    let mut next_strip = 0;
    let mut strips_per_image = Vec::new();
    for (index, image) in images.iter().enumerate() {
        assert_eq!(image.dict.get(b"Filter").unwrap().as_name().unwrap(), b"CCITTFaxDecode", "{name}");
        let mut expected = Vec::new();
        let mut strips_in_image = 0;
        while expected.len() < image.content.len() && next_strip < strips.strips.len() {
            let (offset, count) = strips.strips[next_strip];
            expected.extend_from_slice(&data[offset..offset + count]);
            next_strip += 1;
            strips_in_image += 1;
        }
        if strips.fill_order == 2 {
            expected.iter_mut().for_each(|byte| *byte = byte.reverse_bits());
        }
        assert_eq!(image.content, expected, "{name}: image {index} contains whole strips");
        let rows = decode_parms(image).get(b"Rows").unwrap().as_i64().unwrap() as usize;
        let length = first_ifd_value(&data, 257).unwrap() as usize;
        let first_row = (next_strip - strips_in_image) * rows_per_strip.min(length);
        let strip_rows = (next_strip * rows_per_strip.min(length)).min(length) - first_row;
        assert_eq!(rows, strip_rows, "{name}: image {index} has the rows of its strips");
        strips_per_image.push(strips_in_image);
    }
    assert_eq!(next_strip, strips.strips.len(), "{name}: every strip is passed through");
    (images, strips_per_image)
}

/// Returns the first value of a SHORT or LONG tag of the first IFD.
fn first_ifd_value(data: &[u8], wanted: u16) -> Option<u32> {
    let little = data.starts_with(b"II");
    let u16_at = |at: usize| {
        let bytes = [data[at], data[at + 1]];
        if little { u16::from_le_bytes(bytes) } else { u16::from_be_bytes(bytes) }
    };
    let u32_at = |at: usize| {
        let bytes = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if little { u32::from_le_bytes(bytes) } else { u32::from_be_bytes(bytes) }
    };
    let ifd = u32_at(4) as usize;
    (0..usize::from(u16_at(ifd))).map(|index| ifd + 2 + index * 12).find(|&at| u16_at(at) == wanted).map(|at| {
        if u16_at(at + 2) == 3 { u32::from(u16_at(at + 8)) } else { u32_at(at + 8) }
    })
}

fn k_of(stream: &Stream) -> i64 {
    decode_parms(stream).get(b"K").unwrap().as_i64().unwrap()
}

#[test]
fn ccitt_samples_pass_through_like_tiff2pdf() {
    let folder = tempfile::tempdir().unwrap();
    // Sample, the sign of the expected /K (G4 -1, 1-D 0, 2-D positive), and pages.
    let cases = [
        ("pillow-g4-fillorder2.tif", -1, 1),
        ("tm-g3-2d-fillorder2.tif", 1, 1),
        ("pillow-g3-fine-multipage-pagecount0.tif", 0, 3),
        ("tm-204x98-ccitt-mh-rle.tiff", 0, 1),
    ];
    for (name, k_sign, pages) in cases {
        let mine = convert_with_binary(name, folder.path());
        let (images, _) = assert_strips_passed_through(name, &mine);
        assert_eq!(images.len(), 1, "{name}: one strip, one image");
        assert_eq!(k_of(&images[0]).signum(), k_sign, "{name}");

        let reference = tiff2pdf(name, folder.path());
        for page in 1..=pages {
            let (rendered, errors) = render(&mine, page);
            let (expected, _) = render(&reference, page);
            assert_eq!(errors, "", "{name} page {page}: the PDF reader reported errors");
            let ratio = difference_ratio(&rendered, &expected);
            assert!(ratio < 0.01, "{name} page {page}: {:.2}% of pixels differ from tiff2pdf", ratio * 100.0);
        }
    }
}

#[test]
fn modified_huffman_rows_are_byte_aligned() {
    let folder = tempfile::tempdir().unwrap();
    let mine = convert_with_binary("tm-204x98-ccitt-mh-rle.tiff", folder.path());
    let (images, _) = assert_strips_passed_through("tm-204x98-ccitt-mh-rle.tiff", &mine);
    let parms = decode_parms(&images[0]);
    assert!(parms.get(b"EncodedByteAlign").unwrap().as_bool().unwrap());
    assert!(parms.get(b"BlackIs1").is_err(), "MinIsWhite data needs the default BlackIs1 false");
}

#[test]
fn group3_without_eol_passed_through() {
    // Neither file decodes in libtiff 4.5, so there is no tiff2pdf reference: the PDF
    // reader must decode every row without an error and draw the page.
    let folder = tempfile::tempdir().unwrap();
    for name in ["libtiff-g3-1d-no-eol.tif", "tm-mh-data-labelled-g3.tif"] {
        let mine = convert_with_binary(name, folder.path());
        let (images, strips_per_image) = assert_strips_passed_through(name, &mine);
        if name == "libtiff-g3-1d-no-eol.tif" {
            // Without EOL codes, a strip joins the one before it only where the zero bits
            // padding that strip's last row leave the next row's codes unchanged, as when
            // the row ends on a byte boundary. Some of the 63 strips do, others not.
            assert!(strips_per_image.iter().any(|&strips| strips > 1), "{name}: some strips joined");
            assert!(images.len() > 1, "{name}: some strips cannot join");
        }
        for image in &images {
            let parms = decode_parms(image);
            assert_eq!(parms.get(b"K").unwrap().as_i64().unwrap(), 0, "{name}");
            assert!(parms.get(b"EndOfLine").is_err(), "{name}: the data has no EOL codes");
            assert!(parms.get(b"EncodedByteAlign").is_err(), "{name}: rows are not byte-aligned");
        }
        let (rendered, errors) = render(&mine, 1);
        assert_eq!(errors, "", "{name}: the PDF reader reported errors");
        assert!(rendered.iter().any(|&gray| gray < 128), "{name}: the page is blank");
    }
}

#[test]
fn damaged_group3_rows_transcoded_like_libtiff() {
    // Rows that end on a make-up code without a terminating code, and a row cut short by
    // an EOL: libtiff repairs them, PDF readers would not, so the page is transcoded.
    let name = "tm-g3-204x196-eol-padding.tif";
    let folder = tempfile::tempdir().unwrap();
    let mine = convert_with_binary(name, folder.path());
    let document = Document::load(&mine).unwrap();
    let images = page_images(&document).remove(0);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].dict.get(b"Filter").unwrap().as_name().unwrap(), b"FlateDecode");
    let (_, errors) = render(&mine, 1);
    assert_eq!(errors, "");

    let mut rows = Vec::new();
    flate2::read::ZlibDecoder::new(images[0].content.as_slice()).read_to_end(&mut rows).unwrap();

    // libtiff's own decoding, uncompressed by tiffcp, as the reference.
    let uncompressed = folder.path().join("uncompressed.tif");
    let run = Command::new("tiffcp").args(["-c", "none"]).arg(sample_path(name)).arg(&uncompressed).output().unwrap();
    assert!(run.status.success(), "tiffcp failed");
    let data = std::fs::read(&uncompressed).unwrap();
    // MinIsWhite: libtiff writes 0 for white, the PDF image 1.
    let reference: Vec<u8> = first_ifd_strips(&data)
        .strips
        .iter()
        .flat_map(|&(offset, count)| data[offset..offset + count].iter().map(|byte| !byte))
        .collect();
    assert_eq!(rows.len(), reference.len());

    // The data has no EOL before its first row, and libtiff skips that row while it
    // searches for one, so its rows are ours moved up by one. Row 0 is white.
    let row_bytes = 1728 / 8;
    let ours: Vec<&[u8]> = rows.chunks(row_bytes).collect();
    let theirs: Vec<&[u8]> = reference.chunks(row_bytes).collect();
    assert!(ours[0].iter().all(|&byte| byte == 0xFF));
    let differing = (0..theirs.len() - 1).filter(|&row| theirs[row] != ours[row + 1]).count();
    // One damaged row is completed differently: libtiff pads the row cut short by an
    // EOL after its last full code, and so do we, but the codes read up to there differ.
    assert!(differing <= 1, "{differing} rows differ from libtiff's");
}

#[test]
fn fax_page_size_from_both_resolutions() {
    let converted = files_to_pdf(
        &[("fax.tiff".to_string(), sample("tm-204x98-ccitt-mh-rle.tiff"))],
        &Limits::default(),
    )
    .unwrap();
    let document = Document::load_mem(&converted.pdf).unwrap();
    let page_id = *document.get_pages().values().next().unwrap();
    let media_box: Vec<f64> = document
        .get_dictionary(page_id)
        .unwrap()
        .get(b"MediaBox")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_float().map(f64::from).or_else(|_| value.as_i64().map(|n| n as f64)).unwrap())
        .collect();
    // 1728 x 1146 pixels at 204 x 98 dpi: 8.47 x 11.69 inches.
    assert!((media_box[2] - 609.9).abs() < 0.5, "width {}", media_box[2]);
    assert!((media_box[3] - 842.0).abs() < 0.5, "height {}", media_box[3]);
}

#[test]
fn pages_counted_by_ifd_chain() {
    let converted = files_to_pdf(
        &[("fine.tif".to_string(), sample("pillow-g3-fine-multipage-pagecount0.tif"))],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(converted.pages, 3);
}

#[test]
fn jpeg_in_tiff_converts() {
    let converted =
        files_to_pdf(&[("photo.tif".to_string(), sample("pillow-jpeg-in-tiff.tif"))], &Limits::default()).unwrap();
    assert_eq!(converted.pages, 1);
    let document = Document::load_mem(&converted.pdf).unwrap();
    let images = page_images(&document).remove(0);
    assert_eq!(images[0].dict.get(b"Width").unwrap().as_i64().unwrap(), 128);
    assert_eq!(images[0].dict.get(b"ColorSpace").unwrap().as_name().unwrap(), b"DeviceRGB");
}

fn expect_rejected(result: Result<faxgate::documents::Converted, DocumentError>) -> String {
    match result {
        Err(DocumentError::Rejected { reason, .. }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn ifd_loop_rejected_quickly() {
    let started = Instant::now();
    let reason = expect_rejected(files_to_pdf(
        &[("loop.tiff".to_string(), sample("pillow-ifd-loop-multipage.tiff"))],
        &Limits::default(),
    ));
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    assert!(reason.contains("loop"), "{reason}");
}

/// Builds a little-endian TIFF of one IFD with the given (tag, value) SHORT/LONG entries
/// and one strip of `strip` bytes.
fn build_tiff(entries: &[(u16, u32)], strip: &[u8]) -> Vec<u8> {
    let mut all: Vec<(u16, u32)> = entries.to_vec();
    let ifd_offset = 8 + strip.len() as u32;
    all.push((273, 8));
    all.push((279, strip.len() as u32));
    all.sort_by_key(|(tag, _)| *tag);
    let mut data = b"II*\0".to_vec();
    data.extend_from_slice(&ifd_offset.to_le_bytes());
    data.extend_from_slice(strip);
    data.extend_from_slice(&(all.len() as u16).to_le_bytes());
    for (tag, value) in all {
        data.extend_from_slice(&tag.to_le_bytes());
        data.extend_from_slice(&4u16.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        data.extend_from_slice(&value.to_le_bytes());
    }
    data.extend_from_slice(&0u32.to_le_bytes());
    data
}

#[test]
fn huge_tiff_rejected_before_decoding() {
    for compression in [1, 4, 5] {
        let data = build_tiff(
            &[(256, 100_000), (257, 100_000), (258, 8), (259, compression), (262, 1), (277, 1)],
            &[0; 64],
        );
        let started = Instant::now();
        let reason = expect_rejected(files_to_pdf(&[("huge.tif".to_string(), data)], &Limits::default()));
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        assert!(reason.contains("100000x100000 pixels"), "compression {compression}: {reason}");
    }
}

#[test]
fn small_uncompressed_tiff_converts() {
    // 8 x 2 pixels, 8-bit gray, MinIsBlack: a black row over a white one.
    let mut strip = vec![0u8; 8];
    strip.extend_from_slice(&[255; 8]);
    let data = build_tiff(&[(256, 8), (257, 2), (258, 8), (259, 1), (262, 1), (277, 1), (278, 2)], &strip);
    let converted = files_to_pdf(&[("gray.tif".to_string(), data)], &Limits::default()).unwrap();
    assert_eq!(converted.pages, 1);
}

#[test]
fn random_bytes_named_pdf_rejected_quickly() {
    // 60 MB of pseudo-random bytes (xorshift), once plain and once behind a PDF header,
    // with the size limits raised so the parser sees them.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = Vec::with_capacity(60 << 20);
    while random.len() < 60 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        random.extend_from_slice(&state.to_le_bytes());
    }
    let limits = Limits { max_document_bytes: 100 << 20, max_total_bytes: 100 << 20, ..Limits::default() };
    for header in [&b""[..], b"%PDF-1.4\n"] {
        let mut data = header.to_vec();
        data.extend_from_slice(&random);
        let started = Instant::now();
        let result = files_to_pdf(&[("random.pdf".to_string(), data)], &limits);
        assert!(matches!(result, Err(DocumentError::Rejected { .. })), "{:?}", result.map(|c| c.pages));
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    }

    // Under the default limits the size alone rejects it.
    let reason = expect_rejected(files_to_pdf(&[("random.pdf".to_string(), random)], &Limits::default()));
    assert!(reason.contains("maximum"), "{reason}");
}


/// Rewrites a sample with libtiff's tiffcp under another compression and strip height.
fn rewrite(name: &str, compression: &str, rows_per_strip: u32, output: &Path) {
    let run = Command::new("tiffcp")
        .args(["-c", compression, "-r", &rows_per_strip.to_string()])
        .arg(sample_path(name))
        .arg(output)
        .output()
        .expect("tiffcp runs (install libtiff-tools)");
    assert!(run.status.success(), "tiffcp -c {compression} failed: {}", String::from_utf8_lossy(&run.stderr));
}

/// Returns the pixels of the first image of a PDF as pdfimages (poppler) decodes them:
/// packed rows, 1 for black, as in a PBM file.
fn first_image_pixels(pdf: &Path, folder: &Path) -> Vec<u8> {
    let prefix = folder.join("extracted");
    let run = Command::new("pdfimages").args(["-f", "1", "-l", "1"]).arg(pdf).arg(&prefix).output().expect("pdfimages runs");
    assert!(run.status.success(), "pdfimages failed: {}", String::from_utf8_lossy(&run.stderr));
    let pbm = std::fs::read(folder.join("extracted-000.pbm")).expect("pdfimages wrote a PBM image");
    // "P4\n<width> <height>\n" and then the rows.
    let mut newlines = 0;
    let start = pbm.iter().position(|&byte| {
        newlines += usize::from(byte == b'\n');
        newlines == 2
    });
    pbm[start.unwrap() + 1..].to_vec()
}

/// Returns the first page of a TIFF as libtiff decodes it: packed rows, 1 for black.
fn libtiff_pixels(tiff: &Path, folder: &Path) -> Vec<u8> {
    let uncompressed = folder.join("uncompressed.tif");
    let run = Command::new("tiffcp").args(["-c", "none", "-r", "100000"]).arg(tiff).arg(&uncompressed).output().unwrap();
    assert!(run.status.success(), "tiffcp failed");
    let data = std::fs::read(&uncompressed).unwrap();
    // The sample is MinIsWhite, where 1 is black.
    assert_eq!(first_ifd_value(&data, 262), Some(0));
    first_ifd_strips(&data).strips.iter().flat_map(|&(offset, count)| data[offset..offset + count].to_vec()).collect()
}

#[test]
fn multi_strip_ccitt_becomes_one_image() {
    let folder = tempfile::tempdir().unwrap();
    // Compression written by tiffcp, rows per strip, and whether the strips are joined
    // as they are (Group 3) or the page is re-encoded as Group 4.
    let cases = [
        ("g4", 100, false),
        ("g4", 1, false),
        ("g3:2d:fill", 100, true),
        ("g3:2d", 37, true),
        ("g3:1d:fill", 100, true),
        ("g3:1d", 100, true),
        // 2156 strips of one row each.
        ("g3:1d", 1, true),
    ];
    for (compression, rows_per_strip, joined) in cases {
        let case = format!("{compression} with {rows_per_strip} rows per strip");
        let tiff = folder.path().join("rewritten.tif");
        rewrite("pillow-g3-fine-multipage-pagecount0.tif", compression, rows_per_strip, &tiff);

        let mine = folder.path().join("mine.pdf");
        let run = Command::new(env!("CARGO_BIN_EXE_faxgate"))
            .env("FAXGATE_CONFIG", "")
            .args(["convert", tiff.to_str().unwrap(), "-o", mine.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(run.status.success(), "{case}: {}", String::from_utf8_lossy(&run.stderr));

        let document = Document::load(&mine).unwrap();
        for (page, images) in page_images(&document).iter().enumerate() {
            assert_eq!(images.len(), 1, "{case} page {}: one image", page + 1);
            assert_eq!(images[0].dict.get(b"Filter").unwrap().as_name().unwrap(), b"CCITTFaxDecode", "{case}");
            assert_eq!(decode_parms(&images[0]).get(b"Rows").unwrap().as_i64().unwrap(), 2156, "{case}");
        }
        let image = &page_images(&document)[0][0];
        let data = std::fs::read(&tiff).unwrap();
        let strips: Vec<u8> = first_ifd_strips(&data)
            .strips
            .iter()
            .flat_map(|&(offset, count)| data[offset..offset + count].to_vec())
            .collect();
        if joined {
            assert_eq!(image.content, strips, "{case}: the strips' bytes joined");
            assert!(k_of(image) >= 0, "{case}");
        } else {
            assert_ne!(image.content, strips, "{case}: re-encoded");
            assert_eq!(k_of(image), -1, "{case}");
        }
        assert_eq!(first_image_pixels(&mine, folder.path()), libtiff_pixels(&tiff, folder.path()), "{case}: pixels");

        let reference = folder.path().join("reference.pdf");
        let run = Command::new("tiff2pdf").arg("-o").arg(&reference).arg(&tiff).output().unwrap();
        assert!(run.status.success(), "{case}: tiff2pdf failed");
        for page in 1..=3 {
            let (rendered, errors) = render(&mine, page);
            let (expected, _) = render(&reference, page);
            assert_eq!(errors, "", "{case} page {page}: the PDF reader reported errors");
            let ratio = difference_ratio(&rendered, &expected);
            assert!(ratio < 0.01, "{case} page {page}: {:.2}% of pixels differ from tiff2pdf", ratio * 100.0);
        }
    }
}

#[test]
fn min_is_black_ccitt_sets_black_is_1() {
    let folder = tempfile::tempdir().unwrap();
    let tiff = folder.path().join("inverted.tif");
    std::fs::write(&tiff, sample("pillow-g4-fillorder2.tif")).unwrap();
    let run = Command::new("tiffset").args(["-s", "262", "1"]).arg(&tiff).output().expect("tiffset runs");
    assert!(run.status.success());

    let mine = folder.path().join("mine.pdf");
    let run = Command::new(env!("CARGO_BIN_EXE_faxgate"))
        .env("FAXGATE_CONFIG", "")
        .args(["convert", tiff.to_str().unwrap(), "-o", mine.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success());
    let document = Document::load(&mine).unwrap();
    let images = page_images(&document).remove(0);
    assert!(decode_parms(&images[0]).get(b"BlackIs1").unwrap().as_bool().unwrap());

    let reference = folder.path().join("reference.pdf");
    let run = Command::new("tiff2pdf").arg("-o").arg(&reference).arg(&tiff).output().unwrap();
    assert!(run.status.success());
    let (rendered, _) = render(&mine, 1);
    let (expected, _) = render(&reference, 1);
    let ratio = difference_ratio(&rendered, &expected);
    assert!(ratio < 0.01, "{:.2}% of pixels differ from tiff2pdf", ratio * 100.0);
}

#[test]
fn orientation_tag_turns_page() {
    // 8 x 2 pixels without a resolution (72 dpi), Orientation 6: a quarter turn
    // clockwise gives a page 2 points wide and 8 high.
    let data = build_tiff(&[(256, 8), (257, 2), (258, 8), (259, 1), (262, 1), (274, 6), (277, 1)], &[0; 16]);
    let converted = files_to_pdf(&[("turned.tif".to_string(), data)], &Limits::default()).unwrap();
    let document = Document::load_mem(&converted.pdf).unwrap();
    let page_id = *document.get_pages().values().next().unwrap();
    let media_box = document.get_dictionary(page_id).unwrap().get(b"MediaBox").unwrap().as_array().unwrap().clone();
    let size: Vec<f32> = media_box.iter().map(|value| value.as_float().unwrap()).collect();
    assert_eq!(size, vec![0.0, 0.0, 2.0, 8.0]);
}

#[test]
fn old_style_jpeg_rejected_clearly() {
    let data = build_tiff(&[(256, 8), (257, 8), (258, 8), (259, 6), (262, 6), (277, 3)], &[0; 16]);
    let reason = expect_rejected(files_to_pdf(&[("ojpeg.tif".to_string(), data)], &Limits::default()));
    assert!(reason.contains("old-style JPEG compression in TIFF (Compression 6) is not supported"), "{reason}");
}

#[test]
fn bigtiff_rejected_clearly() {
    let data = b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0".to_vec();
    let reason = expect_rejected(files_to_pdf(&[("big.tif".to_string(), data)], &Limits::default()));
    assert!(reason.contains("BigTIFF files are not supported"), "{reason}");
}

#[test]
fn tiff_pages_over_budget_rejected() {
    let limits = Limits { max_pages: 2, ..Limits::default() };
    let result = files_to_pdf(&[("fine.tif".to_string(), sample("pillow-g3-fine-multipage-pagecount0.tif"))], &limits);
    assert!(matches!(result, Err(DocumentError::TooManyPages { max: 2, .. })), "{:?}", result.map(|c| c.pages));
}
