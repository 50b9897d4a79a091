#!/usr/bin/env python3
"""Backup speed and memory on mixed app data, measured in one run:

    .venv/bin/python bench/backups.py [--size 1G] [--repeat 2] [--dir /var/tmp]

1. Builds --size of mixed data in a temp dir (same filesystem as the outputs): half in many small
   files (1-64 KiB), half in four large files; each 64 KiB piece is either random bytes or
   repeated text, so the data is partly compressible.
2. tgz backup (formats.pack to a filesystem storage, in a child process) beside
   `tar -c | gzip -1 > file` of the same folder, and beside `tar -c | pigz -1` / `zstd -1 -T0`
   where those programs exist (the compressor Berth uses is gzip level 1, parallel in-process).
   Target: tgz throughput >= 0.9 x tar|gzip -1.
2b. zstd backup (formats.pack "zstd": zstd level 1 on every core, in-process) beside
   `tar -c | zstd -1 -T0 > file` of the same folder in the same run, tgz's figure beside it, and
   its restore beside `tar -x --zstd`. Target: zstd throughput >= 0.8 x tar|zstd -1 -T0.
3. rsync: a 245 MB log is added, a first backup made, then (a) 1% of the small files rewritten
   (new bytes, chosen at random) and backed up against the first, and (b) a realistic change
   (200 small files rewritten, 1 MB appended to the log, 10 files added, 10 removed, one chmod)
   backed up against (a); each with its time as a fraction of the first backup's and the bytes it
   added to the storage against the bytes that changed. Targets: <= 5% of the time, <= 3x the
   changed bytes. The verify stage (what a backup task runs after the upload) is timed too and
   shown as upload+verify against the first backup's upload+verify. The restore of (b) is
   compared with the source. `--only rsync` runs this section alone (`--only zstd`: section 2b).
4. Restore (formats.unpack, child process) beside `tar -xzf` of the baseline archive.
5. Peak memory: the resident high-water mark (VmHWM) of each child process doing a backup or a
   restore. Target < 200 MB.

Each timing is the best of --repeat runs, baseline and Berth alternating, with `sync` before each
so one run's write-back does not land on the next. Berth's writes are fsync'ed (a backup must be
durable); the baseline is shown with and without an fsync of its output, the ratio uses the faster.
Exit status 0 whatever the figures, 2 if the benchmark could not run.
"""
import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT]

TARGET_TGZ_RATIO, TARGET_ZSTD_RATIO, TARGET_RSYNC_FRACTION, TARGET_RSS_MB = 0.9, 0.8, 0.05, 200
TARGET_RSYNC_STORED = 3   # second rsync backup: stored bytes <= 3x the bytes that changed
KEY = "bench encryption password"


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# ---- data --------------------------------------------------------------------------------------

def build_data(root, size, seed=1):
    rnd = random.Random(seed)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 10)))
             for _ in range(5000)]
    corpus = bytearray()
    while len(corpus) < (8 << 20):
        corpus += b" ".join(rnd.choice(words) for _ in range(12)) + b"\n"
    corpus = bytes(corpus)

    def mixed(n):
        out = bytearray()
        while len(out) < n:
            k = min(65536, n - len(out))
            if rnd.random() < 0.5:
                out += os.urandom(k)
            else:
                start = rnd.randrange(len(corpus) - k)
                out += corpus[start:start + k]
        return out

    os.makedirs(root)
    large_total = size // 2
    for i in range(4):
        with open(os.path.join(root, f"large{i}.bin"), "wb") as f:
            left = large_total // 4
            while left:
                k = min(left, 8 << 20)
                f.write(mixed(k))
                left -= k
    small, done, n = size - large_total, 0, 0
    smalls = []
    while done < small:
        folder = os.path.join(root, f"app{n // 2000}", f"d{n // 200 % 10:02d}")
        os.makedirs(folder, exist_ok=True)
        k = min(small - done, rnd.randint(1024, 64 * 1024))
        path = os.path.join(folder, f"f{n:06d}.dat")
        with open(path, "wb") as f:
            f.write(mixed(k))
        smalls.append(path)
        done += k
        n += 1
    return smalls


def tree_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


# ---- child process: run one Berth operation and report its own peak memory ---------------------

def child(spec):
    import backup_storage as bs
    from backups import formats as bf
    storage = bs.FilesystemStorage(spec["store"])
    start, cpu_start = time.monotonic(), _cpu()
    verified = None
    if spec["op"] == "pack":
        result = bf.pack(spec["fmt"], spec["src"], storage, spec["remote"], key=spec.get("key"),
                         previous=spec.get("previous"), log=lambda m: None,
                         concurrency=spec.get("concurrency", 4))
        cpu = _cpu() - cpu_start
        if spec.get("verify"):   # as the backup task's verify stage runs it
            packed = time.monotonic()
            bf.verify(spec["fmt"], storage, spec["remote"], key=spec.get("key"), reused=result.pop("reused", ()))
            verified = time.monotonic() - packed
        result.pop("reused", None)
    else:
        result = bf.unpack(spec["fmt"], storage, spec["remote"], spec["dest"], key=spec.get("key"),
                           log=lambda m: None)
        cpu = _cpu() - cpu_start
    elapsed = time.monotonic() - start - (verified or 0)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "verify": verified, "result": result, "rss_kb": hwm}))


def _cpu():
    """CPU seconds of this process so far (all threads): on a busy machine a steadier figure than
    the wall clock for work that is mostly one thread's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(spec):
    os.sync()
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"child failed: {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- baselines ---------------------------------------------------------------------------------

def timed_pipeline(src, out_path, compressor, fsync=False):
    os.sync()
    start = time.monotonic()
    with open(out_path, "wb") as out:
        tar = subprocess.Popen(["tar", "-c", "-f", "-", "-C", src, "."], stdout=subprocess.PIPE)
        comp = subprocess.Popen(compressor, stdin=tar.stdout, stdout=out)
        tar.stdout.close()
        if comp.wait() != 0 or tar.wait() != 0:
            raise RuntimeError(f"{compressor[0]} pipeline failed")
        if fsync:
            os.fsync(out.fileno())
    return time.monotonic() - start


def timed_extract(archive, dest, decompress="-z"):
    os.makedirs(dest)
    os.sync()
    start = time.monotonic()
    subprocess.run(["tar", "-x", decompress, "-f", archive, "-C", dest], check=True)
    return time.monotonic() - start


_last_tree_removed = 0.0   # monotonic time a folder was last removed (see settle)
RECENT_DELETE_SECS = 61    # ext4 without a journal avoids reusing inodes freed in the last 60 s


def rm(path):
    global _last_tree_removed
    if os.path.isdir(path):
        shutil.rmtree(path)
        _last_tree_removed = time.monotonic()
    elif os.path.exists(path):
        os.unlink(path)


def settle():
    """Before a section's timed extractions: nothing left to write back, and no inodes freed in
    the last minute. On ext4 without a journal (this machine's root) creating 16k files right
    after 16k were deleted costs seconds of kernel time in the inode allocator (bench/restore.py
    found it), so whichever ran after a deletion looked slow. Each run then extracts into a
    folder of its own, removed when the section is over."""
    os.sync()
    wait = _last_tree_removed + RECENT_DELETE_SECS - time.monotonic()
    if wait > 0:
        print(f"    (waiting {wait:.0f} s: inodes freed by a removed folder are still recent)", flush=True)
        time.sleep(wait)
        os.sync()


def mbps(nbytes, secs):
    return nbytes / secs / 1e6


def row(label, nbytes, secs, extra=""):
    print(f"{label:32s} {mbps(nbytes, secs):7.1f} MB/s {secs:7.2f} s   {extra}")


def verdict(ok):
    return "OK" if ok else "MISSED"


def bench_zstd(src, store, out, nbytes, repeat, rss, tgz_secs):
    """zstd backup beside `tar -c | zstd -1 -T0` (same data, same run, alternating), tgz's time
    beside it, and the zstd restore beside `tar -x --zstd` of the baseline archive."""
    print("\n== zstd backup (source MB/s) ==")
    if not shutil.which("zstd"):
        print("tar -c | zstd -1 -T0       (zstd not installed: scripts/system.sh packages bench)")
        return
    base, base_sync, ours, ours_enc, ours_x, base_x = [], [], [], [], [], []
    archive = os.path.join(out, "base.tar.zst")
    stored = 0

    def run_baseline():
        for times, fsync in ((base, False), (base_sync, True)):
            rm(archive)
            times.append(timed_pipeline(src, archive, ["zstd", "-1", "-T0", "-q"], fsync=fsync))

    def run_berth():
        nonlocal stored
        for times, key, label in ((ours, None, "zstd backup"), (ours_enc, KEY, "zstd backup, encrypted")):
            rm(store)
            r = run_child({"op": "pack", "fmt": "zstd", "src": src, "store": store, "remote": "zst", "key": key})
            times.append(r["elapsed"])
            rss.append((label, r["rss_kb"]))
            stored = r["result"]["size"] if key is None else stored

    for i in range(repeat):
        for step in ((run_baseline, run_berth) if i % 2 == 0 else (run_berth, run_baseline)):
            step()
    b, bs_, z, ze = min(base), min(base_sync), min(ours), min(ours_enc)
    ref = min(b, bs_)
    row("tar -c | zstd -1 -T0 > file", nbytes, b, f"-> {os.path.getsize(archive) / 1e6:.0f} MB")
    row("  same + fsync of the file", nbytes, bs_)
    row("berth zstd (-1, all cores)", nbytes, z, f"-> {stored / 1e6:.0f} MB   ratio {ref / z:.2f} "
        f"(target >= {TARGET_ZSTD_RATIO}) {verdict(ref / z >= TARGET_ZSTD_RATIO)}")
    row("berth zstd, encrypted", nbytes, ze, f"ratio {ref / ze:.2f}")
    if tgz_secs:
        row("berth tgz (same run, above)", nbytes, tgz_secs, f"zstd is {tgz_secs / z:.1f}x faster")

    rm(store)
    run_child({"op": "pack", "fmt": "zstd", "src": src, "store": store, "remote": "zst"})
    settle()
    dests = []
    for i in range(repeat):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            dest = os.path.join(out, f"x-zstd-{i}-{which}")
            dests.append(dest)
            if which == 0:
                base_x.append(timed_extract(archive, dest, "--zstd"))
            else:
                r = run_child({"op": "unpack", "fmt": "zstd", "store": store, "remote": "zst", "dest": dest})
                ours_x.append(r["elapsed"])
                rss.append(("zstd restore", r["rss_kb"]))
    for dest in dests:
        rm(dest)
    row("tar -x --zstd", nbytes, min(base_x))
    row("berth zstd restore", nbytes, min(ours_x), f"ratio {min(base_x) / min(ours_x):.2f}")
    rm(store)
    rm(archive)

def store_bytes(store):
    """Bytes the storage holds, each inode once (hard links are free)."""
    seen, total = set(), 0
    for d, _, fs in os.walk(store):
        for f in fs:
            st = os.lstat(os.path.join(d, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def realistic_change(src, smalls, log_path, rnd):
    """(b): 200 small files rewritten, 1 MB appended to the log, 10 files added, 10 removed, one
    mode change. Returns the bytes that changed."""
    left = [p for p in smalls if os.path.exists(p)]
    picked = rnd.sample(left, 220)
    changed = 0
    for p in picked[:200]:
        n = os.path.getsize(p)
        with open(p, "wb") as f:
            f.write(os.urandom(n))
        changed += n
    for p in picked[200:210]:
        os.unlink(p)
        smalls.remove(p)
    with open(log_path, "ab") as f:
        f.write(os.urandom(1 << 20))
    changed += 1 << 20
    folder = os.path.join(src, "app0", "added")
    os.makedirs(folder, exist_ok=True)
    for i in range(10):
        with open(os.path.join(folder, f"new{i}.dat"), "wb") as f:
            f.write(os.urandom(32 << 10))
        changed += 32 << 10
    os.chmod(picked[210], 0o600)
    return changed


def build_log(path, size):
    """A log file: text lines with a little randomness, like an app's."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rnd = random.Random(3)
    line = 0
    with open(path, "wb") as f:
        while f.tell() < size:
            parts = []
            for _ in range(4096):
                line += 1
                parts.append(b"2026-12-05T04:%02d:%02d.%06dZ INFO request %d served in %d ms %s\n" % (
                    line // 60 % 60, line % 60, rnd.randrange(10**6), line, rnd.randrange(900),
                    os.urandom(8).hex().encode()))
            f.write(b"".join(parts))


def bench_rsync(src, store, out, smalls, rss):
    """Section 3: a first rsync backup, then (a) 1% of the small files rewritten and (b) a
    realistic change, each backed up against the backup before; time and stored bytes of each
    beside the first backup's."""
    rm(store)
    log_path = os.path.join(src, "app0", "logs", "app.log")
    build_log(log_path, 245 << 20)
    nbytes = tree_bytes(src)
    nfiles = len(smalls) + 5
    subprocess.run(["tar", "-c", "-f", "/dev/null", "-C", src, "."], check=True)   # warm the page cache
    r1 = run_child({"op": "pack", "fmt": "rsync", "src": src, "store": store, "remote": "r1", "verify": True})
    rss.append(("rsync backup", r1["rss_kb"]))
    s1 = store_bytes(store)
    t1 = r1["elapsed"]
    print("\n== rsync (incremental: time and stored bytes vs the first backup) ==")
    v1 = r1["verify"]
    row("first backup", nbytes, t1, f"{s1 / 1e6:.1f} MB stored ({r1['result']['files']} files, "
        f"{nbytes / 1e6:.0f} MB incl. a {os.path.getsize(log_path) / 1e6:.0f} MB log); verify {v1:.2f} s")

    def second(label, remote, previous, changed_bytes):
        before = store_bytes(store)
        r = run_child({"op": "pack", "fmt": "rsync", "src": src, "store": store, "remote": remote,
                       "previous": previous, "verify": True})
        rss.append(("rsync incremental backup", r["rss_kb"]))
        stored = store_bytes(store) - before
        t = r["elapsed"]
        res = r["result"]
        row(label, nbytes, t, f"{stored / 1e6:.1f} MB stored, {res['uploadedFiles']} files uploaded, "
            f"{res['copiedFiles']} unchanged reused; verify {r['verify']:.2f} s")
        ok_t, ok_b = t / t1 <= TARGET_RSYNC_FRACTION, stored <= TARGET_RSYNC_STORED * changed_bytes
        print(f"  time {t / t1:.2%} of the first (target <= {TARGET_RSYNC_FRACTION:.0%}) {verdict(ok_t)}; "
              f"stored {stored / 1e6:.1f} MB = {stored / changed_bytes:.2f}x the {changed_bytes / 1e6:.1f} MB "
              f"changed (target <= {TARGET_RSYNC_STORED}x) {verdict(ok_b)}; {stored / s1:.2%} of the first's bytes; "
              f"upload+verify {(t + r['verify']) / (t1 + v1):.2%} of the first's; "
              f"CPU {r['cpu']:.2f} s = {r['cpu'] / r1['cpu']:.2%} of the first's {r1['cpu']:.2f} s")
        return r

    rnd = random.Random(7)
    changed = rnd.sample(smalls, max(1, nfiles // 100))
    changed_bytes = 0
    for p in changed:
        n = os.path.getsize(p)
        with open(p, "wb") as f:
            f.write(os.urandom(n))
        changed_bytes += n
    print(f"(a) {len(changed)} small files rewritten ({len(changed) / nfiles:.1%}, {changed_bytes / 1e6:.1f} MB):")
    second("second backup (a)", "r2", "r1", changed_bytes)
    changed_bytes = realistic_change(src, smalls, log_path, rnd)
    print(f"(b) 200 files rewritten, 1 MB appended to the log, 10 added, 10 removed, one chmod "
          f"({changed_bytes / 1e6:.1f} MB):")
    second("third backup (b)", "r3", "r2", changed_bytes)
    dest = os.path.join(out, "x-rsync")
    settle()
    r = run_child({"op": "unpack", "fmt": "rsync", "store": store, "remote": "r3", "dest": dest})
    rss.append(("rsync restore", r["rss_kb"]))
    same = subprocess.run(["diff", "-r", "-q", src, dest], capture_output=True).returncode == 0
    row("rsync restore of (b)", nbytes, r["elapsed"], "byte-exact" if same else "DIFFERS from the source")
    rm(dest)
    rm(store)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="amount of data (e.g. 1G, 256M); default 1G")
    ap.add_argument("--repeat", type=int, default=2, help="runs per timing, best kept (default 2)")
    ap.add_argument("--dir", default=None, help="where to build the data and write backups")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--only", choices=("rsync", "zstd"), help="run one section only (rsync: section 3, "
                    "zstd: section 2b)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if not shutil.which("tar") or not shutil.which("gzip"):
        print("needs GNU tar and gzip", file=sys.stderr)
        return 2
    size = parse_size(args.size)
    work = tempfile.mkdtemp(prefix="berth-bench-backups-", dir=args.dir)
    src, store, out = os.path.join(work, "src"), os.path.join(work, "store"), os.path.join(work, "out")
    os.makedirs(out)
    rss = []
    try:
        t = time.monotonic()
        smalls = build_data(src, size)
        nbytes = tree_bytes(src)
        nfiles = len(smalls) + 4
        print(f"data: {nbytes / 1e6:.0f} MB in {nfiles} files ({len(smalls)} small, 4 large), "
              f"built in {time.monotonic() - t:.0f} s, in {work}  [{os.cpu_count()} CPUs]")
        subprocess.run(["tar", "-c", "-f", "/dev/null", "-C", src, "."], check=True)   # warm the page cache
        if args.only == "rsync":
            bench_rsync(src, store, out, smalls, rss)
            return 0
        if args.only == "zstd":
            bench_zstd(src, store, out, nbytes, args.repeat, rss, None)
            return 0

        # -- tgz backup vs tar | gzip -1 ------------------------------------------------------
        base, base_sync, tgz, tgz_enc = [], [], [], []
        base_archive = os.path.join(out, "base.tar.gz")
        tgz_size = 0

        def run_baseline():
            rm(base_archive)
            base.append(timed_pipeline(src, base_archive, ["gzip", "-1"]))
            rm(base_archive)
            base_sync.append(timed_pipeline(src, base_archive, ["gzip", "-1"], fsync=True))

        def run_berth():
            nonlocal tgz_size
            rm(store)
            r = run_child({"op": "pack", "fmt": "tgz", "src": src, "store": store, "remote": "tgz"})
            tgz.append(r["elapsed"])
            rss.append(("tgz backup", r["rss_kb"]))
            tgz_size = r["result"]["size"]
            rm(store)
            r = run_child({"op": "pack", "fmt": "tgz", "src": src, "store": store, "remote": "tgz",
                           "key": KEY})
            tgz_enc.append(r["elapsed"])
            rss.append(("tgz backup, encrypted", r["rss_kb"]))

        for i in range(args.repeat):
            # Alternate which goes first: the disk's write-back of one run must not always
            # land on the same contender.
            for step in ((run_baseline, run_berth) if i % 2 == 0 else (run_berth, run_baseline)):
                step()
        base_size = os.path.getsize(base_archive)
        b, bs_, o, oe = min(base), min(base_sync), min(tgz), min(tgz_enc)
        ref = min(b, bs_)
        print("\n== tgz backup (source MB/s) ==")
        row("tar -c | gzip -1 > file", nbytes, b, f"-> {base_size / 1e6:.0f} MB")
        row("  same + fsync of the file", nbytes, bs_)
        row("berth tgz (gzip -1, parallel)", nbytes, o, f"-> {tgz_size / 1e6:.0f} MB   ratio {ref / o:.2f} "
            f"(target >= {TARGET_TGZ_RATIO}) {verdict(ref / o >= TARGET_TGZ_RATIO)}")
        row("berth tgz, encrypted", nbytes, oe, f"ratio {ref / oe:.2f}")
        for name, cmd in (("pigz", ["pigz", "-1"]),):
            if shutil.which(name):
                path = os.path.join(out, f"alt.{name}")
                secs = min(timed_pipeline(src, path, cmd) for _ in range(args.repeat))
                row(f"tar -c | {' '.join(cmd)}", nbytes, secs,
                    f"-> {os.path.getsize(path) / 1e6:.0f} MB   (for comparison)")
                rm(path)
            else:
                print(f"tar -c | {' '.join(cmd):20s}  ({name} not installed)")

        bench_zstd(src, store, out, nbytes, args.repeat, rss, o)

        # -- restore vs tar -x ---------------------------------------------------------------
        rm(store)
        run_child({"op": "pack", "fmt": "tgz", "src": src, "store": store, "remote": "tgz"})
        base_x, ours_x, dests = [], [], []

        def restore_baseline():
            dests.append(os.path.join(out, f"x-base-{len(dests)}"))
            base_x.append(timed_extract(base_archive, dests[-1]))

        def restore_berth():
            dests.append(os.path.join(out, f"x-berth-{len(dests)}"))
            r = run_child({"op": "unpack", "fmt": "tgz", "store": store, "remote": "tgz", "dest": dests[-1]})
            ours_x.append(r["elapsed"])
            rss.append(("tgz restore", r["rss_kb"]))

        settle()
        for i in range(args.repeat):
            order = (restore_baseline, restore_berth) if i % 2 == 0 else (restore_berth, restore_baseline)
            for step in order:
                step()
        for dest in dests:
            rm(dest)
        bx, ox = min(base_x), min(ours_x)
        print("\n== restore (source MB/s) ==")
        row("tar -xzf", nbytes, bx)
        row("berth tgz restore", nbytes, ox, f"ratio {bx / ox:.2f}")
        rm(store)
        rm(base_archive)

        bench_rsync(src, store, out, smalls, rss)

        # -- memory --------------------------------------------------------------------------
        print("\n== peak memory (VmHWM of the process doing the work) ==")
        worst = {}
        for name, kb in rss:
            worst[name] = max(worst.get(name, 0), kb)
        for name, kb in worst.items():
            print(f"{name:30s} {kb / 1024:7.1f} MB")
        peak = max(worst.values()) / 1024
        print(f"peak {peak:.1f} MB (target < {TARGET_RSS_MB} MB) {verdict(peak < TARGET_RSS_MB)}")
    except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not trace back
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
