"""zstd: one archive object `<remote>.tar.zst` (`.tar.zst.enc` with a key).

The same GNU tar stream as tgz (tgz.pack_tgz runs tar, counts the files, writes the checksum
list), compressed with zstd level 1 by libzstd's own worker threads (one per CPU) instead of
parallel gzip members: 3-4x the throughput of tgz for a similar size, and the result is a
standard .tar.zst (`tar --zstd -xf`, `zstd -d`). tgz stays the default, for a downloaded backup
that opens with any tar. Encryption wraps the compressed stream exactly as tgz does
(encryption.Encrypter / Decrypter, same header, chunks and key check).

Restore is tgz's (tgz.unpack_tgz): checksum list and key checked before anything is written,
`tar -x` with the same options into a prepared folder, the sweep of device nodes and setuid bits,
the folder emptied again on failure. Only the decoding differs: a pull decoder (stream_reader)
that never returns more than one block per read, so memory stays flat even for an archive
crafted to expand enormously. A truncated or modified object is caught by the checksum list
(size and sha256 of everything read), checked before tar's exit status.
"""
import contextlib
import hashlib
import os

import zstandard

from backup_storage import Storage
from backups.formats import tgz
from backups.formats.encryption import Encrypter, Keyring
from backups.formats.streams import BLOCK, IterReader, Log, Progress, mb, prefetch, read_exact

LEVEL = 1


def archive_path(remote: str, encrypted: bool) -> str:
    return remote + (".tar.zst.enc" if encrypted else ".tar.zst")


def pack_zstd(src_dir: str, storage: Storage, remote: str, key: str | None, log: Log, concurrency: int) -> dict:
    return tgz.pack_tgz(src_dir, storage, remote, key, log, concurrency, fmt="zstd", path_of=archive_path,
                        compress=_compress)


def unpack_zstd(storage: Storage, remote: str, dest_dir: str, key: str | None, log: Log,
                expect_encrypted: bool | None = None, privileged: bool = False) -> dict:
    return tgz.unpack_tgz(storage, remote, dest_dir, key, log, expect_encrypted, privileged, fmt="zstd",
                          path_of=archive_path, extraction=_Extraction)


def _compress(stream, counted, keyring: Keyring | None, progress: Progress) -> int:
    """The tar stream, zstd-compressed on every core, into `counted` (encrypted when keyed);
    returns the tar bytes read. libzstd's workers compress while this thread reads the next
    block; compress() only hands over what is ready, so memory stays at a few jobs' worth."""
    sink = Encrypter(counted, keyring) if keyring else counted
    cctx = zstandard.ZstdCompressor(level=LEVEL, threads=max(1, os.cpu_count() or 1), write_checksum=True)
    cobj = cctx.compressobj()
    read_bytes = 0
    while True:
        block = read_exact(stream, BLOCK)
        if not block:
            break
        read_bytes += len(block)
        out = cobj.compress(block)
        if out:
            sink.write(out)
        progress(f"{mb(read_bytes)} read, {mb(counted.size)} stored")
    sink.write(cobj.flush())
    if keyring:
        sink.close()
    return read_bytes


class _Extraction(tgz._Extraction):
    """tgz's `tar -x` run (same options, same checks); fed through zstd instead of gunzip."""

    def _feed(self, proc, err, r, head, decrypter):
        sha, stored = hashlib.sha256(head), [len(head)]

        def plaintext():
            for raw in prefetch(r, digest=sha):   # hashed in the reading thread
                stored[0] += len(raw)
                if decrypter:
                    yield from decrypter.feed(raw)
                else:
                    yield raw
                self.progress(lambda: f"{mb(stored[0])} read, {mb(self.written)} extracted")
            if decrypter:
                yield decrypter.finish()

        source = plaintext()
        with self._feeding(proc, err, zstandard.ZstdError) as feeder:
            reader = zstandard.ZstdDecompressor().stream_reader(IterReader(source), read_size=BLOCK,
                                                                read_across_frames=True)
            with contextlib.closing(reader):
                while True:
                    out = reader.read(BLOCK)
                    if not out:
                        break
                    feeder.write(out)
                    self.written += len(out)
            # Whatever follows the last frame is still read, so the checksum covers the whole object.
            for _ in source:
                pass
        return sha, stored[0]
