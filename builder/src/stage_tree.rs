//! Stage 2: [`VerifiedInputs`] (+ built components) → the root [`Tree`], its file contents in
//! the [`ContentStore`]: layers applied in order with OCI semantics, then the extra files,
//! wheels, components, data-disk mount points and the workload description.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;

use crate::content::ContentStore;
use crate::inputs::layer;
use crate::pin::PinError;
use crate::placement::{one_input_per_path, place_file, NewFile};
use crate::plan::Plan;
use crate::progress::{Meter, Progress};
use crate::stage_inputs::VerifiedInputs;
use crate::tree::{self, wheel, Tree};
use crate::workload::WORKLOAD_PATH;

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
    apply_layers(&mut tree, inputs, store, progress)?;
    for (i, pinned) in &inputs.files {
        let entry = &plan.manifest.rootfs.files[*i];
        let field = format!("rootfs.files[{i}]");
        let mut f = fs_err::File::open(&pinned.path)?;
        let file = NewFile {
            path: &entry.path,
            mode: entry.mode.bits(),
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
            mode: entry.mode.bits(),
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

/// Applies the layers in order. Each is read and parsed on a thread of its own, up to
/// [`layers_at_once`] at a time, its files spooled as it goes ([`tree::apply::parse_layer`]);
/// this thread applies each parsed layer to the tree in order ([`tree::apply::apply_parsed`])
/// while the next ones are parsed. A layer's reading is bound by one stream (inflating it, or
/// hashing it for its pin), so two at once keep both cores busy where one left a core half
/// idle. Errors are those of applying them one after another: a layer's pin error first,
/// then the first error of its entries in order; a later layer's error is never reported
/// before an earlier one's.
fn apply_layers(
    tree: &mut Tree,
    inputs: &VerifiedInputs,
    store: &ContentStore,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let n = inputs.layers.len();
    let name = |l: &crate::inputs::oci_layout::LayerBlob| {
        format!("sha256:{} ({})", l.digest, l.media_type)
    };
    std::thread::scope(|s| {
        let parse = |i: usize| {
            let l = &inputs.layers[i].blob;
            let read = Arc::new(AtomicU64::new(0));
            let (done, finished) = std::sync::mpsc::channel::<()>();
            let position = Arc::clone(&read);
            let thread = std::thread::Builder::new()
                .name("layer-parse".into())
                .spawn_scoped(s, move || {
                    let mut spooler = store.spooler();
                    // One read of the blob: its digest and the uncompressed stream's diff_id
                    // are checked when the layer ends (a wrong digest is reported even if
                    // parsing failed).
                    let checked = layer::apply_checked(l, |reader| {
                        let mut counted = Counted { reader, position };
                        tree::apply::parse_layer(&mut counted, &name(l), &mut spooler)
                    });
                    let spooled = spooler.finish();
                    drop(done);
                    (checked, spooled)
                });
            thread.map(|thread| (thread, read, finished))
        };
        let at_once = layers_at_once();
        let mut ahead = std::collections::VecDeque::new();
        let mut next = 0;
        // One task for all the layers: the ones parsed ahead are read while an earlier one is
        // waited for, and their bytes count as they are read.
        let total = inputs.layers.iter().map(|l| l.blob.size).sum();
        let task = if n == 1 {
            String::from("layer")
        } else {
            format!("{n} layers")
        };
        let mut meter = Meter::new(progress, task, total);
        // Blob bytes of the layers applied so far.
        let mut applied = 0u64;
        for (i, verified) in inputs.layers.iter().enumerate() {
            while next < n && next < i + at_once {
                ahead.push_back(parse(next)?);
                next += 1;
            }
            let Some((thread, read, finished)) = ahead.pop_front() else {
                anyhow::bail!("layer {} was not parsed", i + 1);
            };
            let l = &verified.blob;
            progress.message(&format!(
                "[{}/{n}] applying layer sha256:{} ({} bytes)",
                i + 1,
                l.digest,
                l.size
            ));
            // Until the thread is done (or gone): it drops `done` at its end.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(std::time::Duration::from_millis(100))
            {
                meter.at(applied + read.load(Ordering::Relaxed) + in_flight(&ahead));
            }
            let (checked, spooled) = match thread.join() {
                Ok(parsed) => parsed,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            applied += l.size;
            meter.at(applied + in_flight(&ahead));
            // The typed errors themselves, not their transparent wrappers, go into the chain:
            // the exit code is chosen by the error's type (lib.rs `exit_code`). They name the
            // layer themselves ("layer sha256:...: ..."): no context that would say it twice.
            let parsed = match checked {
                Ok(entries) => Ok(entries),
                Err(layer::CheckedError::Apply(failed)) => Err(failed),
                Err(layer::CheckedError::Layer(e)) => {
                    return Err(match (e, &verified.tar) {
                        // A plain tar layer's pin is checked here: named by its manifest
                        // field, as the other pin checks name theirs.
                        (
                            layer::LayerError::Digest {
                                expected, found, ..
                            },
                            Some(pinned),
                        ) => anyhow::Error::new(PinError::Mismatch {
                            field: pinned.field.clone(),
                            source_path: pinned.source.clone(),
                            expected,
                            found,
                        }),
                        (e, _) => anyhow::Error::new(e),
                    });
                }
            };
            spooled.map_err(|source| tree::apply::ApplyError::Store {
                layer: name(l),
                source,
            })?;
            tree::apply::apply_parsed(tree, parsed, &name(l), store)?;
        }
        meter.finish();
        Ok(())
    })
}

/// Blob bytes read so far by the layers parsed ahead.
fn in_flight<T, U>(ahead: &std::collections::VecDeque<(T, Arc<AtomicU64>, U)>) -> u64 {
    ahead
        .iter()
        .map(|(_, read, _)| read.load(Ordering::Relaxed))
        .sum()
}

/// How many layers are read and parsed at once: one per core, at least two (one layer's
/// reading is bound by one stream), at most four (each holds its parsed entries until it is
/// applied).
fn layers_at_once() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// A layer's decompressed stream that publishes how many blob bytes were read so far (the
/// blob's size is what is known in advance), for the applying thread's progress.
struct Counted<'r> {
    reader: &'r mut layer::LayerReader,
    position: Arc<AtomicU64>,
}

impl std::io::Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.position
            .store(self.reader.blob_position(), Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::progress::Seen;

    /// A tar layer of one file of `len` bytes (different bytes per `seed`).
    fn layer(name: &str, len: usize, seed: u8) -> Vec<u8> {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(len as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// Layers read ahead of the one being applied count as they are read: one task for all of
    /// them, its bytes only growing, from 0 to the blobs' total (which crosses a report step).
    #[test]
    fn the_layers_are_one_task_whose_bytes_grow_to_the_blobs_total() {
        let dir = tempfile::tempdir().unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let mut toml = String::from(
            "schema = 1\n[image]\nname = \"t\"\nversion = \"1\"\nsource_date_epoch = 0\n",
        );
        let mut sizes = 0u64;
        for (i, len) in [3 << 20, 5 << 20, 2 << 20].into_iter().enumerate() {
            let bytes = layer(&format!("f{i}"), len, i as u8);
            let name = format!("l{i}.tar");
            fs_err::write(dir.path().join(&name), &bytes).unwrap();
            sizes += fs_err::metadata(dir.path().join(&name)).unwrap().len();
            toml += &format!(
                "[[rootfs.layers]]\ntar = \"{name}\"\nsha256 = \"{}\"\n",
                sha(&bytes)
            );
        }
        for (name, bytes) in [("vmlinuz", b"k"), ("fw.fd", b"f")] {
            fs_err::write(dir.path().join(name), bytes).unwrap();
        }
        toml += &format!(
            "[boot]\nkernel = {{ path = \"vmlinuz\", sha256 = \"{}\" }}\n\
             firmware = {{ path = \"fw.fd\", sha256 = \"{}\" }}\n",
            sha(b"k"),
            sha(b"f")
        );
        let manifest = dir.path().join("m.toml");
        fs_err::write(&manifest, toml).unwrap();
        let plan = Plan::new(&manifest, &dir.path().join("out"), false).unwrap();
        let inputs = crate::stage_inputs::verify_inputs(&plan).unwrap();
        let store = ContentStore::new(dir.path().join("objects")).unwrap();
        let reports = Seen::default();
        assemble_tree(&plan, &inputs, &[], &store, &reports).unwrap();

        let reports = reports.0.into_inner();
        assert!(
            reports.iter().all(|(task, _, _)| task == "3 layers"),
            "{reports:?}"
        );
        assert_eq!(reports.first(), Some(&("3 layers".into(), 0, sizes)));
        assert_eq!(reports.last(), Some(&("3 layers".into(), sizes, sizes)));
        assert!(reports.len() >= 3, "a report past 8 MiB: {reports:?}");
        assert!(reports.windows(2).all(|w| w[0].1 <= w[1].1), "{reports:?}");
    }
}
