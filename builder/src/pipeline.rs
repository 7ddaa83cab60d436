//! The only place the stages are sequenced: plan → inputs → tree → EROFS → verity → record.
//!
//! Each stage takes the previous stage's output and returns its own; `anyhow` context names
//! the stage in every error.

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use measurements::record::{self, Record};
use measurements::Sha256Digest;
use sha2::{Digest, Sha256};

use crate::content::ContentStore;
use crate::inputs::{layer, oci_layout, wheel};
use crate::manifest::LayerSource;
use crate::output::Staging;
use crate::pin::{self, PinError, PinErrors, PinnedFile};
use crate::plan::Plan;
use crate::seed::{self, Part, Seed};
use crate::tree::{self, Leaf, LeafKind, Metadata, Tree};
use crate::{erofs, verity};

/// Where progress messages go (stderr in the binary; nowhere in tests).
pub trait Progress {
    /// One line of progress.
    fn message(&self, line: &str);
}

impl<F: Fn(&str)> Progress for F {
    fn message(&self, line: &str) {
        self(line)
    }
}

/// Stage 1 output: every input verified against its pin.
#[derive(Debug)]
pub struct VerifiedInputs {
    /// Layers in application order, each with the record entry of its source.
    pub layers: Vec<oci_layout::LayerBlob>,
    /// Record entries, in manifest order.
    pub records: Vec<record::Input>,
    /// Extra files (manifest entry index, pinned source).
    pub files: Vec<(usize, PinnedFile)>,
    /// `rootfs.wheels`, in manifest order.
    pub rootfs_wheels: Vec<PinnedFile>,
    /// Each data disk's pinned inputs, in manifest order.
    pub disks: Vec<VerifiedDisk>,
    /// The kernel's configuration, when the manifest pins it.
    pub kernel_config: Option<PinnedFile>,
    /// The kernel.
    pub kernel: PinnedFile,
    /// The firmware.
    pub firmware: PinnedFile,
    /// Each profile's firmware, in profile order.
    pub profile_firmware: Vec<PinnedFile>,
    /// `workload.json` for the guest init, from the last OCI image's config.
    pub workload: Option<Vec<u8>>,
}

/// One data disk's pinned inputs.
#[derive(Debug)]
pub struct VerifiedDisk {
    /// `disks[i].wheels`, in manifest order.
    pub wheels: Vec<PinnedFile>,
    /// `disks[i].files`, in manifest order.
    pub files: Vec<PinnedFile>,
}

/// The guest init's `workload.json` (see guest-init/README.md) from an OCI image config: the
/// fields it reads, with their OCI names, in a fixed order.
pub fn workload_json(config: &oci_spec::image::ImageConfiguration) -> anyhow::Result<Vec<u8>> {
    let mut map = serde_json::Map::new();
    if let Some(c) = config.config() {
        if let Some(v) = c.entrypoint() {
            map.insert("Entrypoint".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.cmd() {
            map.insert("Cmd".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.env() {
            map.insert("Env".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.working_dir() {
            map.insert("WorkingDir".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.user() {
            map.insert("User".into(), serde_json::to_value(v)?);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Stage 1: checks every pin. Problems with local files are collected and reported together.
pub fn verify_inputs(plan: &Plan) -> anyhow::Result<VerifiedInputs> {
    let m = &plan.manifest;
    let base = &plan.base_dir;
    let mut problems: Vec<PinError> = Vec::new();
    let mut records = Vec::new();
    let mut layers = Vec::new();
    let mut workload = None;
    for (i, source) in m.rootfs.layers.iter().enumerate() {
        match source {
            LayerSource::Oci { oci, manifest } => {
                let field = format!("rootfs.layers[{i}]");
                let Some(pin) = manifest else {
                    problems.push(PinError::MissingImage {
                        field,
                        source_path: oci.clone(),
                        available: oci_layout::list_manifests(&base.join(oci)),
                    });
                    continue;
                };
                let image = oci_layout::open_image(&base.join(oci), pin)
                    .with_context(|| format!("{field}: OCI image layout {oci}"))?;
                records.push(record::Input::OciImage {
                    source: oci.clone(),
                    manifest: image.manifest_digest,
                    config: image.config_digest,
                });
                workload = Some(workload_json(&image.config)?);
                for l in image.layers {
                    records.push(record::Input::Layer {
                        source: oci.clone(),
                        sha256: l.digest,
                        size: l.size,
                        media_type: l.media_type.clone(),
                    });
                    layers.push(l);
                }
            }
            LayerSource::Tar { tar, sha256 } => {
                let field = format!("rootfs.layers[{i}]");
                match pin::check(base, tar, sha256.as_ref(), &field) {
                    Ok(p) => {
                        let l = oci_layout::tar_blob(&p.path, &p.sha256)
                            .with_context(|| format!("{field}: tar layer {tar}"))?;
                        records.push(record::Input::Layer {
                            source: tar.clone(),
                            sha256: p.sha256,
                            size: p.size,
                            media_type: l.media_type.clone(),
                        });
                        layers.push(l);
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    let mut files = Vec::new();
    for (i, f) in m.rootfs.files.iter().enumerate() {
        match pin::check(
            base,
            &f.source,
            f.sha256.as_ref(),
            &format!("rootfs.files[{i}]"),
        ) {
            Ok(p) => {
                records.push(record::Input::File {
                    disk: None,
                    path: f.path.clone(),
                    source: f.source.clone(),
                    sha256: p.sha256,
                    size: p.size,
                });
                files.push((i, p));
            }
            Err(e) => problems.push(e),
        }
    }
    let mut pin_all = |field: String, path: &str, pin: Option<&Sha256Digest>| match pin::check(
        base, path, pin, &field,
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let rootfs_wheels: Vec<PinnedFile> = m
        .rootfs
        .wheels
        .iter()
        .enumerate()
        .filter_map(|(i, w)| pin_all(format!("rootfs.wheels[{i}]"), &w.wheel, w.sha256.as_ref()))
        .collect();
    let mut disks = Vec::new();
    for (d, disk) in m.disks.iter().enumerate() {
        let wheels = disk
            .wheels
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                pin_all(
                    format!("disks[{d}].wheels[{i}]"),
                    &w.wheel,
                    w.sha256.as_ref(),
                )
            })
            .collect();
        let files = disk
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                pin_all(
                    format!("disks[{d}].files[{i}]"),
                    &f.source,
                    f.sha256.as_ref(),
                )
            })
            .collect();
        disks.push(VerifiedDisk { wheels, files });
    }
    let kernel_config = m
        .boot
        .kernel_config
        .as_ref()
        .and_then(|c| pin_all("boot.kernel_config".to_owned(), &c.path, c.sha256.as_ref()));
    let mut profile_firmware = Vec::new();
    for (i, p) in m.profiles.iter().enumerate() {
        let fw = p.firmware();
        match pin::check(
            base,
            &fw.path,
            fw.sha256.as_ref(),
            &format!("profiles[{i}].firmware"),
        ) {
            Ok(f) => profile_firmware.push(f),
            Err(e) => problems.push(e),
        }
    }
    let kernel = pin::check(
        base,
        &m.boot.kernel.path,
        m.boot.kernel.sha256.as_ref(),
        "boot.kernel",
    );
    let firmware = pin::check(
        base,
        &m.boot.firmware.path,
        m.boot.firmware.sha256.as_ref(),
        "boot.firmware",
    );
    let (kernel, firmware) = match (kernel, firmware) {
        (Ok(k), Ok(f)) if problems.is_empty() => (k, f),
        (k, f) => {
            problems.extend(k.err());
            problems.extend(f.err());
            return Err(PinErrors(problems).into());
        }
    };
    records.push(record::Input::Kernel {
        source: kernel.source.clone(),
        sha256: kernel.sha256,
        size: kernel.size,
    });
    if let Some(c) = &kernel_config {
        records.push(record::Input::KernelConfig {
            source: c.source.clone(),
            sha256: c.sha256,
            size: c.size,
        });
    }
    records.push(record::Input::Firmware {
        source: firmware.source.clone(),
        sha256: firmware.sha256,
        size: firmware.size,
    });
    for f in &profile_firmware {
        let known = records
            .iter()
            .any(|r| matches!(r, record::Input::Firmware { sha256, .. } if *sha256 == f.sha256));
        if !known {
            records.push(record::Input::Firmware {
                source: f.source.clone(),
                sha256: f.sha256,
                size: f.size,
            });
        }
    }
    Ok(VerifiedInputs {
        layers,
        records,
        files,
        rootfs_wheels,
        disks,
        kernel_config,
        kernel,
        firmware,
        profile_firmware,
        workload: if m.boot.init.is_some() {
            workload
        } else {
            None
        },
    })
}

/// Stage 1b: builds the manifest's Rust components (cached by cargo in
/// `<workspace>/target/enclave-components`).
pub fn build_components(
    plan: &Plan,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<crate::components::rust::Built>> {
    let mut out = Vec::new();
    for (i, r) in plan.manifest.rootfs.rust.iter().enumerate() {
        progress.message(&format!(
            "building {}/{} (rootfs.rust[{i}]; cached in target/enclave-components, a first build can take minutes)",
            r.package, r.bin
        ));
        let workspace = fs_err::canonicalize(plan.base_dir.join(&r.workspace))
            .with_context(|| format!("rootfs.rust[{i}].workspace"))?;
        let target = workspace.join("target").join("enclave-components");
        let built = crate::components::rust::build(
            &workspace,
            &target,
            &plan.cargo_home,
            &r.package,
            &r.bin,
        )
        .with_context(|| format!("rootfs.rust[{i}]: building {}/{}", r.package, r.bin))?;
        out.push(built);
    }
    Ok(out)
}

/// Where the guest init's workload description goes.
pub const WORKLOAD_PATH: &str = "/etc/enclave/workload.json";

/// Stage 2: applies the layers in order, then the extra files, into an in-memory tree whose
/// file contents go to `store`.
pub fn assemble_tree(
    plan: &Plan,
    inputs: &VerifiedInputs,
    components: &[crate::components::rust::Built],
    store: &ContentStore,
    progress: &dyn Progress,
) -> anyhow::Result<(Tree, Vec<wheel::Unpacked>)> {
    let mut tree = Tree::new();
    let n = inputs.layers.len();
    for (i, l) in inputs.layers.iter().enumerate() {
        let name = format!("layer {} ({})", l.digest, l.media_type);
        progress.message(&format!(
            "[{}/{n}] applying layer sha256:{} ({} bytes)",
            i + 1,
            l.digest,
            l.size
        ));
        let mut reader = layer::open_layer(l).with_context(|| format!("opening {name}"))?;
        tree::apply::apply_layer(&mut tree, &mut reader, &name, store)
            .with_context(|| format!("applying {name}"))?;
    }
    for (i, pinned) in &inputs.files {
        let entry = &plan.manifest.rootfs.files[*i];
        let field = format!("rootfs.files[{i}]");
        let mut f = fs_err::File::open(&pinned.path)?;
        let file = NewFile {
            path: &entry.path,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
        };
        place_file(
            &mut tree,
            store,
            &mut f,
            pinned.size,
            Some(&pinned.sha256),
            &file,
        )
        .with_context(|| format!("{field}: {}", entry.source))?;
    }
    let mut wheels = Vec::new();
    for (i, (w, pinned)) in plan
        .manifest
        .rootfs
        .wheels
        .iter()
        .zip(&inputs.rootfs_wheels)
        .enumerate()
    {
        progress.message(&format!("unpacking wheel {}", w.wheel));
        let placement = wheel::Placement {
            take: w.take.as_deref(),
            into: &w.into,
        };
        wheels.push(
            wheel::unpack(&pinned.path, &w.wheel, placement, &mut tree, store)
                .with_context(|| format!("rootfs.wheels[{i}]"))?,
        );
    }
    for (i, built) in components.iter().enumerate() {
        let entry = &plan.manifest.rootfs.rust[i];
        let mut f = fs_err::File::open(&built.path)?;
        let file = NewFile {
            path: &entry.path,
            mode: entry.mode,
            uid: 0,
            gid: 0,
        };
        place_file(
            &mut tree,
            store,
            &mut f,
            built.size,
            Some(&built.sha256),
            &file,
        )
        .with_context(|| format!("rootfs.rust[{i}]: {}", built.path.display()))?;
    }
    for (i, d) in plan.manifest.disks.iter().enumerate() {
        tree::apply::ensure_directory(&mut tree, d.mount.as_bytes(), "data disk mount points")
            .with_context(|| format!("disks[{i}].mount"))?;
    }
    if let Some(json) = &inputs.workload {
        let file = NewFile {
            path: WORKLOAD_PATH,
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        place_file(
            &mut tree,
            store,
            &mut json.as_slice(),
            json.len() as u64,
            None,
            &file,
        )?;
    }
    let m = &plan.manifest;
    let files = m
        .rootfs
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), format!("rootfs.files[{i}]")));
    let wheel_paths = wheels.iter().enumerate().flat_map(|(i, u)| {
        u.files
            .iter()
            .map(move |f| (f.path.as_str(), format!("rootfs.wheels[{i}]")))
    });
    let rust = m
        .rust_paths()
        .map(|(i, p)| (p, format!("rootfs.rust[{i}]")));
    let workload = inputs.workload.as_ref().map(|_| {
        (
            WORKLOAD_PATH,
            "the workload description (boot.init)".to_owned(),
        )
    });
    one_input_per_path(
        files.chain(wheel_paths).chain(rust).chain(workload),
        "the root file system",
    )?;
    Ok((tree, wheels))
}

/// Two manifest entries place the same path (layers may replace each other's files, and
/// manifest entries may replace a layer's; two manifest entries for one path is a mistake,
/// and the record would list a digest that is not in the image).
#[derive(Debug, thiserror::Error)]
#[error("{by}: {path} is already placed in {place} by {first}; give each entry its own path")]
pub struct PathTwice {
    /// The later entry (manifest field).
    pub by: String,
    /// The path.
    pub path: String,
    /// The root file system or a data disk.
    pub place: String,
    /// The earlier entry.
    pub first: String,
}

/// Refuses a path placed by two `(path, manifest field)` entries.
pub(crate) fn one_input_per_path<'a>(
    entries: impl Iterator<Item = (&'a str, String)>,
    place: &str,
) -> Result<(), PathTwice> {
    let mut placed: std::collections::BTreeMap<String, String> = Default::default();
    for (path, by) in entries {
        let key: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if let Some(first) = placed.insert(key.join("/"), by.clone()) {
            return Err(PathTwice {
                by,
                path: path.to_owned(),
                place: place.to_owned(),
                first,
            });
        }
    }
    Ok(())
}

/// A regular file the builder adds to the tree after the layers.
pub(crate) struct NewFile<'a> {
    pub(crate) path: &'a str,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Streams `reader` into the store and places it at `file.path`. With `expected`, the bytes
/// must still have the digest they were pinned or built with.
pub(crate) fn place_file(
    tree: &mut Tree,
    store: &ContentStore,
    reader: &mut dyn Read,
    size: u64,
    expected: Option<&Sha256Digest>,
    file: &NewFile<'_>,
) -> anyhow::Result<()> {
    let content = store.put(reader, size).context("reading")?;
    if let Some(expected) = expected {
        anyhow::ensure!(
            content.sha256 == expected.0,
            "changed while the build was reading it; rebuild"
        );
    }
    let leaf = Leaf {
        meta: Metadata {
            mode: file.mode,
            uid: file.uid,
            gid: file.gid,
            xattrs: Default::default(),
        },
        kind: LeafKind::Regular(content),
    };
    tree::apply::insert_file(tree, file.path.as_bytes(), leaf)
        .with_context(|| format!("placing {}", file.path))?;
    Ok(())
}

/// Stage 3+4 output: an EROFS image written and its verity tree appended (the root image,
/// or a data disk).
#[derive(Debug)]
pub struct VerityImage {
    /// The image file (in the staging directory).
    pub path: PathBuf,
    /// The file-system UUID.
    pub fs_uuid: [u8; 16],
    /// File-system bytes; the verity area starts here.
    pub data_size: u64,
    /// The verity parameters used.
    pub params: verity::Params,
    /// The computed tree.
    pub tree: verity::HashTree,
    /// sha256 and size of the whole image file.
    pub sha256: Sha256Digest,
    /// Total size.
    pub size: u64,
}

/// Stage 3+4: writes the EROFS image, then appends the dm-verity hash area to the same file.
#[allow(clippy::too_many_arguments)]
pub fn write_root_image(
    plan: &Plan,
    inputs: &VerifiedInputs,
    components: &[crate::components::rust::Built],
    wheels: &[wheel::Unpacked],
    tree: &Tree,
    store: &ContentStore,
    path: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<VerityImage> {
    let m = &plan.manifest;
    let mut parts: Vec<Part<'_>> = inputs
        .layers
        .iter()
        .map(|l| Part::Layer(&l.digest))
        .collect();
    for (i, p) in &inputs.files {
        let f = &m.rootfs.files[*i];
        parts.push(Part::File(&f.path, f.mode, f.uid, f.gid, &p.sha256));
    }
    let workload_digest = inputs.workload.as_deref().map(Sha256Digest::of);
    for w in wheels {
        for (f, mode) in w.files.iter().zip(&w.modes) {
            parts.push(Part::File(&f.path, *mode, 0, 0, &f.sha256));
        }
    }
    for (r, b) in m.rootfs.rust.iter().zip(components) {
        parts.push(Part::File(&r.path, r.mode, 0, 0, &b.sha256));
    }
    for d in &m.disks {
        parts.push(Part::Dir(&d.mount));
    }
    if let Some(d) = &workload_digest {
        parts.push(Part::File(WORKLOAD_PATH, 0o644, 0, 0, d));
    }
    let seed = Seed::new(m.image.source_date_epoch, &parts);
    // `check`'s random-salt injection targets the root image only.
    let salt = crate::check::inject::salt(plan, seed.verity_salt());
    write_verity_image(
        plan,
        &seed,
        salt,
        tree,
        store,
        path,
        "root file system",
        progress,
    )
}

/// Writes `tree` as an EROFS image at `path` and appends its dm-verity hash area (salted with
/// `salt`); the file-system UUID and verity UUID derive from `seed`.
#[allow(clippy::too_many_arguments)]
pub fn write_verity_image(
    plan: &Plan,
    seed: &Seed,
    salt: Vec<u8>,
    tree: &Tree,
    store: &ContentStore,
    path: &Path,
    what: &str,
    progress: &dyn Progress,
) -> anyhow::Result<VerityImage> {
    let m = &plan.manifest;
    let fs_uuid = seed.uuid("erofs");

    progress.message(&format!("writing the EROFS {what}"));
    let file = fs_err::File::create(path)?;
    let mut hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let info = erofs::write(
        tree,
        &erofs::Options {
            epoch: m.image.source_date_epoch,
            uuid: fs_uuid,
        },
        store,
        &mut hashing,
    )
    .context("writing the EROFS image")?;
    hashing.flush()?;

    progress.message(&format!(
        "computing the dm-verity tree over {} bytes",
        info.size
    ));
    let params = verity::Params {
        salt,
        uuid: seed.uuid("verity"),
        data_block_size: 4096,
        hash_block_size: 4096,
    };
    let mut data = fs_err::File::open(path)?;
    let vtree = {
        let mut r = io::BufReader::with_capacity(1 << 20, &mut data).take(info.size);
        verity::build(&mut r, info.size, &params).context("computing the dm-verity tree")?
    };
    hashing.write_all(&vtree.area)?;
    let (mut buffered, sha256, size) = hashing.finish();
    buffered.flush()?;
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    // Guard: the file on disk is exactly what was hashed.
    let mut check = fs_err::File::open(path)?;
    let on_disk = check.seek(SeekFrom::End(0))?;
    anyhow::ensure!(
        on_disk == size,
        "{} is {on_disk} bytes on disk, {size} were written",
        path.display()
    );
    Ok(VerityImage {
        path: path.to_owned(),
        fs_uuid,
        data_size: info.size,
        params,
        tree: vtree,
        sha256,
        size,
    })
}

/// The kernel command line fragment that opens the verity devices and mounts the root: the
/// root is the first device-mapper device (`/dev/dm-0`), each data disk follows with its own
/// minor number (`/dev/dm-1`, ...), required and mounted read-only by the guest init.
pub fn verity_cmdline(
    root_device: &str,
    image: &VerityImage,
    disks: &[crate::disks::BuiltDisk],
) -> Result<String, verity::Error> {
    let table = image.tree.dm_table(
        root_device,
        root_device,
        image.data_size,
        &["panic_on_corruption"],
    )?;
    let mut create = format!("root,,,ro,{table}");
    let mut init_params = String::new();
    for d in disks {
        let table = d.image.tree.dm_table(
            &d.device,
            &d.device,
            d.image.data_size,
            &["panic_on_corruption"],
        )?;
        create.push_str(&format!(";{},,{},ro,{table}", d.name, d.minor));
        init_params.push_str(&format!(
            " enclave.mount={},{},erofs,ro",
            d.dm_device, d.mount
        ));
    }
    let require = if disks.is_empty() {
        String::new()
    } else {
        let devs: Vec<&str> = disks.iter().map(|d| d.dm_device.as_str()).collect();
        format!(" enclave.require={}", devs.join(","))
    };
    Ok(format!(
        "root=/dev/dm-0 rootfstype=erofs ro dm-mod.create=\"{create}\"{require}{init_params}"
    ))
}

/// Runs the whole build, returning the record (also written as `record.json`).
pub fn build(plan: &Plan, progress: &dyn Progress) -> anyhow::Result<Record> {
    let inputs = verify_inputs(plan).context("checking inputs")?;
    let components = build_components(plan, progress).context("building Rust components")?;
    let staging = Staging::new(&plan.out_dir, plan.force)?;
    let dir = staging.path();
    let store = ContentStore::new(dir.join(".objects"))?;
    let (mut tree, rootfs_wheels) = assemble_tree(plan, &inputs, &components, &store, progress)
        .context("assembling the root tree")?;
    crate::check::inject::into_tree(plan, &mut tree, &store).context("test-only injection")?;
    let image = write_root_image(
        plan,
        &inputs,
        &components,
        &rootfs_wheels,
        &tree,
        &store,
        &dir.join("rootfs.img"),
        progress,
    )
    .context("writing rootfs.img")?;
    fs_err::remove_dir_all(store.dir())?;
    drop(tree);
    let disks = crate::disks::build_disks(plan, &inputs, dir, progress)?;

    let m = &plan.manifest;
    let fragment = verity_cmdline(&m.boot.root_device, &image, &disks)?;
    let full = [
        m.boot.cmdline.trim().to_owned(),
        m.boot
            .init
            .as_ref()
            .map(|i| format!("init={i}"))
            .unwrap_or_default(),
        fragment.clone(),
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    check_cmdline_length(&full, m.disks.len())?;
    // The kernel and firmware ship with the image so the VMM loads, and verifiers measure,
    // these exact bytes.
    let kernel = read_pinned(&inputs.kernel)?;
    let firmware = read_pinned(&inputs.firmware)?;
    let initrd = empty_initrd(m.image.source_date_epoch)?;
    let disk_files: Vec<&str> = disks.iter().map(|d| d.file_name.as_str()).collect();
    let run_qemu = run_qemu_script(&disk_files);
    let artifacts: [(&str, &[u8]); 5] = [
        ("cmdline", full.as_bytes()),
        ("vmlinuz", &kernel),
        ("initrd.img", &initrd),
        ("OVMF.fd", &firmware),
        ("run-qemu.sh", run_qemu.as_bytes()),
    ];
    let mut outputs = vec![record::Output {
        name: "rootfs.img".to_owned(),
        size: image.size,
        sha256: image.sha256,
    }];
    for d in &disks {
        outputs.push(record::Output {
            name: d.file_name.clone(),
            size: d.image.size,
            sha256: d.image.sha256,
        });
    }
    for (name, bytes) in artifacts {
        fs_err::write(dir.join(name), bytes)?;
        outputs.push(record::Output {
            name: name.to_owned(),
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(bytes),
        });
    }
    set_mode(&dir.join("run-qemu.sh"), 0o755)?;
    outputs.sort_by(|a, b| a.name.cmp(&b.name));

    let boot = crate::measure::launch::BootImage {
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: &full,
    };
    let mut measurements = Vec::new();
    for (profile, fw) in m.profiles.iter().zip(&inputs.profile_firmware) {
        progress.message(&format!("measuring profile {}", profile.name()));
        measurements.push(
            crate::measure::launch::measure(profile, fw, &boot)
                .with_context(|| format!("measuring profile {}", profile.name()))?,
        );
    }

    // Inputs in manifest order: layers and files (stage 1), wheels, components, disks, then
    // the boot inputs (stage 1).
    let mut inputs_record = inputs.records.clone();
    let boot_at = inputs_record
        .iter()
        .position(|r| matches!(r, record::Input::Kernel { .. }))
        .unwrap_or(inputs_record.len());
    let mut middle = Vec::new();
    for ((w, pinned), u) in m
        .rootfs
        .wheels
        .iter()
        .zip(&inputs.rootfs_wheels)
        .zip(rootfs_wheels)
    {
        middle.push(wheel_record(None, &w.wheel, pinned, u));
    }
    for (r, b) in m.rootfs.rust.iter().zip(&components) {
        middle.push(record::Input::RustComponent {
            package: r.package.clone(),
            bin: r.bin.clone(),
            path: r.path.clone(),
            sha256: b.sha256,
            size: b.size,
            crates: b.crates.clone(),
        });
    }
    let mut disk_records = Vec::new();
    for d in disks {
        middle.extend(d.inputs);
        disk_records.push(record::Disk {
            name: d.name,
            mount: d.mount,
            image: d.file_name,
            device: d.device,
            dm_device: d.dm_device,
            filesystem: rootfs_record(&d.image),
        });
    }
    inputs_record.splice(boot_at..boot_at, middle);

    let record = Record {
        schema: record::RECORD_SCHEMA.to_owned(),
        builder: record::BuilderInfo {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        image: record::ImageInfo {
            name: m.image.name.clone(),
            version: m.image.version.clone(),
        },
        manifest_sha256: plan.manifest_sha256,
        source_date_epoch: m.image.source_date_epoch,
        inputs: inputs_record,
        outputs,
        rootfs: rootfs_record(&image),
        disks: disk_records,
        kernel_cmdline: record::KernelCmdline {
            verity_fragment: fragment,
            full,
        },
        measurements,
    };
    fs_err::write(dir.join("record.json"), record_json(&record)?)?;
    staging.commit()?;
    Ok(record)
}

/// x86's `COMMAND_LINE_SIZE` (2048, NUL included): the kernel silently truncates a longer
/// line, which would cut a verity table. OVMF also appends ` initrd=initrd` (14 bytes).
pub const MAX_CMDLINE: usize = 2048 - 1 - 14;

/// Refuses a command line the kernel would truncate.
pub fn check_cmdline_length(full: &str, disks: usize) -> Result<(), crate::manifest::Error> {
    if full.len() <= MAX_CMDLINE {
        return Ok(());
    }
    Err(crate::manifest::Error::Field {
        origin: "the kernel command line".to_owned(),
        field: "boot.cmdline".to_owned(),
        problem: format!(
            "with the verity parameters of the root and {disks} data disk(s) it is {} bytes; \
             the kernel keeps {MAX_CMDLINE} (x86 COMMAND_LINE_SIZE minus what OVMF appends). \
             Shorten boot.cmdline or use fewer data disks (each adds about 250 bytes)",
            full.len()
        ),
    })
}

/// The record's description of an EROFS + verity image.
pub fn rootfs_record(image: &VerityImage) -> record::Rootfs {
    record::Rootfs {
        filesystem: "erofs".to_owned(),
        uuid: seed::uuid_string(&image.fs_uuid),
        data_size: image.data_size,
        verity: record::Verity {
            hash_algorithm: "sha256".to_owned(),
            root_hash: Sha256Digest(image.tree.root_hash),
            salt: hex::encode(&image.params.salt),
            data_block_size: image.params.data_block_size,
            hash_block_size: image.params.hash_block_size,
            data_blocks: image.tree.data_blocks,
            hash_blocks: image.tree.hash_blocks,
            hash_offset: image.data_size,
            uuid: seed::uuid_string(&image.params.uuid),
        },
    }
}

/// The record entry of an unpacked wheel.
pub fn wheel_record(
    disk: Option<&str>,
    source: &str,
    pinned: &PinnedFile,
    unpacked: wheel::Unpacked,
) -> record::Input {
    record::Input::Wheel {
        disk: disk.map(str::to_owned),
        source: source.to_owned(),
        sha256: pinned.sha256,
        size: pinned.size,
        name: unpacked.name,
        version: unpacked.version,
        files: unpacked.files,
    }
}

/// `run-qemu.sh` with one read-only virtio drive per data disk after the root, in order
/// (so they appear as /dev/vdb, /dev/vdc, ...). Its bytes depend only on the disk names.
pub fn run_qemu_script(disk_files: &[&str]) -> String {
    let drives: String = disk_files
        .iter()
        .map(|f| format!("  -drive \"file=$d/{f},format=raw,if=virtio,readonly=on\" \\\n"))
        .collect();
    RUN_QEMU.replace("@DISKS@", &drives)
}

/// The local-testing launcher written as `run-qemu.sh`: software emulation, direct kernel
/// boot of the output's own files, the root image (then each data disk, replacing `@DISKS@`)
/// read-only on virtio, guest port 8080 forwarded to 127.0.0.1:$PORT. Its bytes are fixed (no
/// paths), so it is reproducible.
const RUN_QEMU: &str = r#"#!/bin/sh
# Boots this image under QEMU for local testing, from the files beside this script.
# ACCEL (default tcg), CPU (default max), MEM (MiB, default 1024), PORT (host port for guest
# 8080, default 8080). The CPU model must offer RDRAND: on SEV-SNP and TDX the CPU's RDRAND
# seeds the guest's random number generator; without it (QEMU's default TCG model) the kernel
# RNG never initialises and the workload blocks in getrandom().
# The VM powers off when the workload exits; a dm-verity error panics the kernel, which stops
# QEMU (-no-reboot). Extra arguments are passed to QEMU.
d=$(dirname "$0")
exec qemu-system-x86_64 -machine q35 -accel "${ACCEL:-tcg}" -cpu "${CPU:-max}" \
  -m "${MEM:-1024}" -smp 1 \
  -nographic -no-reboot -bios "$d/OVMF.fd" \
  -kernel "$d/vmlinuz" -initrd "$d/initrd.img" -append "$(cat "$d/cmdline")" \
  -drive "file=$d/rootfs.img,format=raw,if=virtio,readonly=on" \
@DISKS@  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:${PORT:-8080}-:8080" \
  -device virtio-net-pci,netdev=n0 "$@"
"#;

/// The initramfs: empty (the kernel opens the verity root itself via `dm-mod.create=`), a
/// valid newc archive holding only the trailer.
fn empty_initrd(epoch: u64) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::initramfs::write_newc(
        &[],
        &crate::initramfs::Options {
            mtime: u32::try_from(epoch).context("source_date_epoch does not fit newc's 32 bits")?,
            pad_to_block: true,
        },
        &mut out,
    )?;
    Ok(out)
}

fn read_pinned(f: &PinnedFile) -> anyhow::Result<Vec<u8>> {
    let bytes = fs_err::read(&f.path)?;
    anyhow::ensure!(
        Sha256Digest::of(&bytes) == f.sha256,
        "{} changed while the build was reading it; rebuild",
        f.source
    );
    Ok(bytes)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The record's canonical bytes: pretty JSON in struct order, with a final newline.
pub fn record_json(record: &Record) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.size,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
