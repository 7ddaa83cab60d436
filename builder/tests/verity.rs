//! `builder::verity` against the real `veritysetup` (cryptsetup 2.x): byte-identical hash
//! areas, identical root hashes, `veritysetup verify` accepting our areas and rejecting
//! tampered ones, and the kernel table's numbers checked through `veritysetup
//! --no-superblock`, whose arguments have the kernel table's meaning.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use builder::verity::{self, Params, Superblock};
use sha2::{Digest, Sha256};

const UUID: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
];
const UUID_STR: &str = "12345678-9abc-4def-8011-223344556677";

fn salt() -> Vec<u8> {
    (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5c).collect()
}

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn veritysetup(args: &[&str]) -> Output {
    Command::new("veritysetup")
        .args(args)
        .output()
        .expect("veritysetup is installed (cryptsetup-bin)")
}

fn veritysetup_ok(args: &[&str]) -> String {
    let out = veritysetup(args);
    assert!(
        out.status.success(),
        "veritysetup {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of a `Name:  value` line in veritysetup's output.
fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {name:?} in veritysetup output:\n{output}"))
        .trim()
}

fn salt_arg(salt: &[u8]) -> String {
    if salt.is_empty() {
        "--salt=-".to_owned()
    } else {
        format!("--salt={}", hex::encode(salt))
    }
}

/// veritysetup `format` arguments matching `params`.
fn format_args(params: &Params) -> Vec<String> {
    vec![
        salt_arg(&params.salt),
        format!("--uuid={UUID_STR}"),
        format!("--data-block-size={}", params.data_block_size),
        format!("--hash-block-size={}", params.hash_block_size),
        "--hash=sha256".to_owned(),
        "--format=1".to_owned(),
    ]
}

fn params_with(data_block_size: u32, hash_block_size: u32, salt: Vec<u8>) -> Params {
    assert_eq!(UUID_STR.replace('-', ""), hex::encode(UUID));
    Params {
        salt,
        uuid: UUID,
        data_block_size,
        hash_block_size,
    }
}

fn str_args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Builds with our code and with `veritysetup format` into a separate hash file; compares.
/// Returns the tree and veritysetup's output.
fn check_separate(dir: &Path, data: &[u8], params: &Params) -> (verity::HashTree, String) {
    let data_path = dir.join("data");
    let hash_path = dir.join("hash");
    fs_err::write(&data_path, data).unwrap();
    let _ = fs_err::remove_file(&hash_path);
    let mut args = vec![
        "format".to_owned(),
        path_str(&data_path).into(),
        path_str(&hash_path).into(),
    ];
    args.extend(format_args(params));
    let out = veritysetup_ok(&str_args(&args));

    let tree = verity::build_at(data, data.len() as u64, params).unwrap();
    assert_eq!(
        tree.root.root_hash_hex(),
        field(&out, "Root hash"),
        "root hash, {} bytes",
        data.len()
    );
    let theirs = fs_err::read(&hash_path).unwrap();
    assert_eq!(
        theirs.len(),
        tree.area.len(),
        "hash area length, {} bytes",
        data.len()
    );
    assert!(
        theirs == tree.area,
        "hash area bytes differ from veritysetup's, {} bytes",
        data.len()
    );
    assert_eq!(
        tree.root.data_blocks,
        field(&out, "Data blocks").parse::<u64>().unwrap()
    );
    assert_eq!(
        tree.root.hash_blocks,
        field(&out, "Hash blocks").parse::<u64>().unwrap()
    );
    // Over the file veritysetup read (positioned reads of a file, not bytes in memory).
    let file = fs_err::File::open(&data_path).unwrap();
    let at = verity::build_at(&file, data.len() as u64, params).unwrap();
    assert_eq!(
        at.root.root_hash_hex(),
        field(&out, "Root hash"),
        "root hash over the file, {} bytes",
        data.len()
    );
    assert!(
        theirs == at.area,
        "hash area over the file differs from veritysetup's, {} bytes",
        data.len()
    );
    (tree, out)
}

/// Same, with the hash area appended to the data (`--hash-offset` = data size).
fn check_appended(dir: &Path, data: &[u8], params: &Params) -> verity::HashTree {
    let image = dir.join("image");
    fs_err::write(&image, data).unwrap();
    let mut args = vec![
        "format".to_owned(),
        path_str(&image).into(),
        path_str(&image).into(),
        format!("--hash-offset={}", data.len()),
        format!(
            "--data-blocks={}",
            data.len() as u64 / u64::from(params.data_block_size)
        ),
    ];
    args.extend(format_args(params));
    let out = veritysetup_ok(&str_args(&args));

    let tree = verity::build_at(data, data.len() as u64, params).unwrap();
    assert_eq!(tree.root.root_hash_hex(), field(&out, "Root hash"));
    let theirs = fs_err::read(&image).unwrap();
    assert!(
        theirs[..data.len()] == *data,
        "veritysetup changed the data area"
    );
    assert!(
        theirs[data.len()..] == tree.area,
        "appended hash area differs, {} bytes",
        data.len()
    );
    tree
}

/// `blocks` 4 KiB blocks of [`pseudo_random`] data and their hash tree (4 KiB data and hash
/// blocks, [`salt`]).
fn random_tree(blocks: usize, seed: u64) -> (Vec<u8>, verity::HashTree) {
    let params = params_with(4096, 4096, salt());
    let data = pseudo_random(blocks * 4096, seed);
    let tree = verity::build_at(&data[..], data.len() as u64, &params).unwrap();
    (data, tree)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn matches_veritysetup_at_hash_block_boundaries() {
    let dir = tempdir();
    let params = params_with(4096, 4096, salt());
    // One hash block holds 128 digests: 1 block has no tree, 128 fill one hash block exactly,
    // 129 need a second level, 128*128+1 a third (and span many read pieces).
    for (seed, blocks) in [1usize, 2, 127, 128, 129, 128 * 128, 128 * 128 + 1]
        .into_iter()
        .enumerate()
    {
        let data = pseudo_random(blocks * 4096, seed as u64);
        check_separate(dir.path(), &data, &params);
        if blocks <= 129 {
            check_appended(dir.path(), &data, &params);
        }
    }
}

#[test]
fn matches_veritysetup_on_patterned_data_and_other_block_sizes() {
    let dir = tempdir();
    // A few MiB of structure: zero runs, repeated blocks, counters.
    let mut data = vec![0u8; 3 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        if (i / 4096) % 3 != 0 {
            *b = (i % 253) as u8;
        }
    }
    for (dbs, hbs, salt) in [
        (4096, 4096, salt()),
        (512, 512, salt()),
        (512, 4096, vec![]),
        (4096, 512, vec![0xa5; 256]),
        (1024, 2048, vec![1]),
        (4096, 65536, salt()),
    ] {
        let params = params_with(dbs, hbs, salt);
        check_separate(dir.path(), &data, &params);
        // The area is position independent at offsets that are multiples of the hash block.
        if data.len().is_multiple_of(hbs as usize) {
            check_appended(dir.path(), &data, &params);
        }
    }
}

#[test]
fn large_random_data_across_read_chunks() {
    let dir = tempdir();
    // 20 MiB + 3 blocks: many read pieces and a short last one.
    let data = pseudo_random((20 << 20) + 3 * 4096, 99);
    check_appended(dir.path(), &data, &params_with(4096, 4096, salt()));
}

#[test]
fn veritysetup_verify_accepts_ours_and_rejects_tampering() {
    let dir = tempdir();
    let (data, tree) = random_tree(300, 7);
    let root = tree.root.root_hash_hex();
    assert_eq!(tree.root.layout.levels(), 2);

    let image = dir.path().join("image");
    let write_image = |data: &[u8], area: &[u8]| {
        let mut bytes = data.to_vec();
        bytes.extend_from_slice(area);
        fs_err::write(&image, bytes).unwrap();
    };
    let offset = format!("--hash-offset={}", data.len());
    let verify = || {
        veritysetup(&["verify", path_str(&image), path_str(&image), &root, &offset])
            .status
            .success()
    };

    write_image(&data, &tree.area);
    assert!(verify(), "veritysetup verify rejects our untouched image");

    let mut bad = data.clone();
    bad[123 * 4096 + 17] ^= 1;
    write_image(&bad, &tree.area);
    assert!(!verify(), "a flipped data byte went unnoticed");

    // One byte in the root level (block 1), one in level 0 (last block), one in the padding.
    let level0_end = 4096 + 4096 + 3 * 4096;
    assert_eq!(tree.area.len(), level0_end);
    for at in [4096 + 5, level0_end - 3 * 4096 + 40, level0_end - 1] {
        let mut area = tree.area.clone();
        area[at] ^= 0x80;
        write_image(&data, &area);
        assert!(!verify(), "a flipped hash-area byte at {at} went unnoticed");
    }

    // A wrong root hash.
    write_image(&data, &tree.area);
    let mut wrong = tree.root.root_hash;
    wrong[0] ^= 1;
    let wrong = hex::encode(wrong);
    assert!(!veritysetup(&[
        "verify",
        path_str(&image),
        path_str(&image),
        &wrong,
        &offset
    ])
    .status
    .success());
}

#[test]
fn dm_table_numbers_agree_with_veritysetup() {
    let dir = tempdir();
    for (dbs, hbs, blocks, salt) in [
        (4096u32, 4096u32, 1000usize, salt()),
        (4096, 4096, 1, salt()),
        (512, 1024, 776, vec![]),
    ] {
        let params = params_with(dbs, hbs, salt.clone());
        let data = pseudo_random(blocks * dbs as usize, blocks as u64);
        let tree = check_appended(dir.path(), &data, &params);
        let image = dir.path().join("image");
        let table = tree
            .root
            .dm_table("/dev/DATA", "/dev/HASH", data.len() as u64, &[])
            .unwrap();
        let f: Vec<&str> = table.split(' ').collect();
        assert_eq!(f.len(), 13, "{table}");
        assert_eq!(
            &f[..6],
            [
                "0",
                &(data.len() / 512).to_string(),
                "verity",
                "1",
                "/dev/DATA",
                "/dev/HASH"
            ]
        );
        assert_eq!(f[6], dbs.to_string());
        assert_eq!(f[7], hbs.to_string());
        assert_eq!(f[10], "sha256");
        assert_eq!(f[11], tree.root.root_hash_hex());
        let (data_blocks, hash_start) = (f[8], f[9].parse::<u64>().unwrap());

        // veritysetup without a superblock takes the kernel's parameters literally: the tree
        // starts at byte hash_offset, data_blocks blocks are covered, the salt is as given.
        let salt_hex = if salt.is_empty() {
            "-".to_owned()
        } else {
            hex::encode(&salt)
        };
        assert_eq!(f[12], salt_hex);
        let root = tree.root.root_hash_hex();
        let args = [
            "verify".to_owned(),
            path_str(&image).into(),
            path_str(&image).into(),
            root,
            "--no-superblock".into(),
            format!("--hash-offset={}", hash_start * u64::from(hbs)),
            format!("--data-blocks={data_blocks}"),
            format!("--data-block-size={dbs}"),
            format!("--hash-block-size={hbs}"),
            "--hash=sha256".into(),
            "--format=1".into(),
            format!("--salt={salt_hex}"),
        ];
        veritysetup_ok(&str_args(&args));

        // And independently: in veritysetup's own image, the block at hash_start hashes to the
        // root hash (when there is a tree at all).
        if tree.root.layout.levels() > 0 {
            let bytes = fs_err::read(&image).unwrap();
            let start = (hash_start * u64::from(hbs)) as usize;
            let top: [u8; 32] = Sha256::new()
                .chain_update(&salt)
                .chain_update(&bytes[start..start + hbs as usize])
                .finalize()
                .into();
            assert_eq!(top, tree.root.root_hash);
        }
    }
}

#[test]
fn superblock_fields_match_veritysetup_dump() {
    let dir = tempdir();
    let (data, tree) = random_tree(200, 3);
    let hash: PathBuf = dir.path().join("ours");
    fs_err::write(&hash, &tree.area).unwrap();
    let dump = veritysetup_ok(&["dump", path_str(&hash)]);
    assert_eq!(field(&dump, "UUID"), UUID_STR);
    assert_eq!(field(&dump, "Hash type"), "1");
    assert_eq!(field(&dump, "Data blocks"), "200");
    assert_eq!(field(&dump, "Data block size"), "4096");
    assert_eq!(field(&dump, "Hash blocks"), "3");
    assert_eq!(field(&dump, "Hash block size"), "4096");
    assert_eq!(field(&dump, "Hash algorithm"), "sha256");
    assert_eq!(field(&dump, "Salt"), hex::encode(salt()));

    // Our parser reads veritysetup's superblock to the same fields.
    let params = params_with(4096, 4096, salt());
    let (_, _) = check_separate(dir.path(), &data, &params);
    let theirs = Superblock::parse(&fs_err::read(dir.path().join("hash")).unwrap()).unwrap();
    assert_eq!(theirs, tree.superblock().unwrap());
    assert_eq!(theirs.uuid, UUID);
    assert_eq!(theirs.salt, salt());

    // Our dump of veritysetup's hash file names its fields and recomputes its root hash.
    let text = verity::dump(&fs_err::read(dir.path().join("hash")).unwrap()).unwrap();
    for line in [
        format!("  uuid             {UUID_STR}"),
        "  data_blocks      200".to_owned(),
        "hash_blocks        3".to_owned(),
        format!("root_hash          {}", tree.root.root_hash_hex()),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
}

#[test]
fn deterministic() {
    let params = params_with(4096, 4096, salt());
    let data = pseudo_random(1000 * 4096, 11);
    let a = verity::build_at(&data[..], data.len() as u64, &params).unwrap();
    let b = verity::build_at(&data[..], data.len() as u64, &params).unwrap();
    assert_eq!(a.root.root_hash, b.root.root_hash);
    assert!(a.area == b.area);
    // A different salt or uuid changes what it should, and only that.
    let c = verity::build_at(
        &data[..],
        data.len() as u64,
        &Params {
            uuid: [0; 16],
            ..params.clone()
        },
    )
    .unwrap();
    assert_eq!(a.root.root_hash, c.root.root_hash);
    assert!(a.area[4096..] == c.area[4096..] && a.area[..4096] != c.area[..4096]);
    let d = verity::build_at(
        &data[..],
        data.len() as u64,
        &Params {
            salt: vec![1],
            ..params
        },
    )
    .unwrap();
    assert_ne!(a.root.root_hash, d.root.root_hash);
}

/// A pinned known answer, so a format change shows up even where veritysetup is missing.
/// source = veritysetup 2.6.1:
///   data = 129 blocks of 4096 bytes, block i filled with byte i (python3)
///   veritysetup format data hash --salt=a5a5…a5 (32 bytes) --uuid=12345678-9abc-4def-8011-223344556677
///   root hash from its output; sha256sum of the hash file.
#[test]
fn known_answer_from_veritysetup() {
    let data: Vec<u8> = (0..129u8).flat_map(|i| [i; 4096]).collect();
    let params = params_with(4096, 4096, vec![0xa5; 32]);
    let tree = verity::build_at(&data[..], data.len() as u64, &params).unwrap();
    assert_eq!(
        tree.root.root_hash_hex(),
        "8a62b977412fd871a9f18a3acee686afe1b8058a87762b6e51783702489753ed",
        "root hash changed: update only if the format change is intentional"
    );
    assert_eq!(
        hex::encode(Sha256::digest(&tree.area)),
        "e4bc3c25e989ac9b37b1230ae67d3b6bd25426dc0fec5739c1b18927925523bb",
        "hash area bytes changed: update only if the format change is intentional"
    );
    insta::assert_snapshot!(verity::dump(&tree.area).unwrap());
}
