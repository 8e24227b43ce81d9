#!/usr/bin/python3
"""lossyfs: a FUSE file system that loses, at a simulated power cut, everything not yet made
durable with fsync (the semantics of Jepsen's LazyFS), for the power-cut test
(``test_powercut.py``).

    /usr/bin/python3 lossyfs.py STORE MOUNTPOINT [--cut-report FILE]

Runs on Debian's ``python3-pyfuse3`` and ``python3-trio`` (``/usr/bin/python3``; the suite's venv
does not have them) and needs ``/dev/fuse`` and root (or ``fusermount3``). Prints ``lossyfs:
mounted`` on stdout once the mount is up.

What is durable lives in STORE (the "disk"): ``STORE/data/<inode>`` holds each file's durable
bytes and ``STORE/meta.json`` the durable namespace (every directory's entries as of that
directory's last fsync, the attributes of the inodes they reach). Everything else lives only in
this process (the "page cache"):

* **file data, size and truncations**: per file, the pages written since its last ``fsync`` or
  ``fdatasync`` are kept in memory (reads see them); a truncation only hides the durable bytes
  past it. ``fsync``/``fdatasync`` of any handle of the file writes them to its durable copy;
* **directory operations** (create, mkdir, unlink, rmdir, rename): change the in-memory
  namespace only; a directory's entries become durable when that directory is fsynced (POSIX
  requires it; SQLite does it when it creates a journal or WAL file, trailkeep after renaming its
  checkpoint file). A file whose name is not durable is gone after a cut even if its data was
  fsynced; a rename whose directory was not fsynced is undone; across two directories, each side
  is durable with its own directory's fsync;
* **attributes** (mode, owner) become durable with the file's fsync, or when a fsync of its
  directory first makes its name durable (times are kept, not checked).

**Power cut**: SIGUSR1 (or SIGTERM). The signal is handled between two file-system requests
(each request is handled without yielding), so no fsync is half applied; the process writes what
it drops to ``--cut-report`` (JSON: files with unsynced bytes, unsynced directory changes) and
exits at once without writing anything else to STORE. The mount is then dead: unmount it
(``fusermount3 -u -z``) and mount STORE again to see what survived. SIGKILL works as well but
may interrupt an fsync half way (a torn write, which this model does not promise to avoid).

Not modelled: hard links and symbolic links (EPERM), extended attributes, torn writes inside
one fsync, reordering of fsynced data (an fsync is all-or-nothing here).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import sys
import time
from typing import Dict, Iterator, List, Optional

import pyfuse3
import trio

PAGE = 64 * 1024
TIMEOUT = 1.0  # attribute/entry cache seconds: every change goes through this mount's kernel


class Inode:
    __slots__ = ("ino", "kind", "mode", "uid", "gid", "atime", "mtime", "ctime", "entries", "durable_entries",
                 "durable_attrs", "nlink", "lookups", "opens", "fd", "size", "dsize", "lo", "pages")

    def __init__(self, ino: int, kind: str, mode: int, uid: int, gid: int):
        now = time.time_ns()
        self.ino = ino
        self.kind = kind  # "dir" | "file"
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.atime = self.mtime = self.ctime = now
        self.entries: Dict[bytes, int] = {}  # dir: current entries
        self.durable_entries: Dict[bytes, int] = {}  # dir: entries as of its last fsync
        self.durable_attrs: Optional[dict] = None
        self.nlink = 0  # current directory entries naming it
        self.lookups = 0
        self.opens = 0
        self.fd: Optional[int] = None
        self.size = 0  # file: current size
        self.dsize = 0  # file: durable size (the STORE copy's length)
        self.lo = 0  # file: durable bytes at offsets >= lo are hidden by a truncation since the last sync
        self.pages: Dict[int, bytearray] = {}  # file: pages written since the last sync

    def attrs(self) -> dict:
        return {"mode": self.mode, "uid": self.uid, "gid": self.gid, "atime": self.atime, "mtime": self.mtime,
                "ctime": self.ctime}


class LossyFS(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, store: str):
        super().__init__()
        self.store = store
        self.data_dir = os.path.join(store, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.inodes: Dict[int, Inode] = {}
        self.handles: Dict[int, int] = {}  # fh -> inode
        self.next_fh = 1
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.stats = {"fsyncs": 0, "fsyncdirs": 0, "bytes_synced": 0}
        self._load()

    # ------------------------------------------------------------------------------ durable state
    def _data_path(self, ino: int) -> str:
        return os.path.join(self.data_dir, str(ino))

    def _load(self) -> None:
        meta_path = os.path.join(self.store, "meta.json")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except FileNotFoundError:
            meta = {"next_ino": self.next_ino, "inodes": {
                str(pyfuse3.ROOT_INODE): {"kind": "dir", "mode": stat.S_IFDIR | 0o700, "uid": os.getuid(),
                                          "gid": os.getgid(), "atime": time.time_ns(), "mtime": time.time_ns(),
                                          "ctime": time.time_ns(), "entries": {}}}}
        self.next_ino = int(meta["next_ino"])
        for k, m in meta["inodes"].items():
            ino = int(k)
            node = Inode(ino, m["kind"], m["mode"], m["uid"], m["gid"])
            node.atime, node.mtime, node.ctime = m["atime"], m["mtime"], m["ctime"]
            node.durable_attrs = node.attrs()
            if node.kind == "dir":
                node.entries = {os.fsencode(n): int(c) for n, c in m["entries"].items()}
                node.durable_entries = dict(node.entries)
            else:
                path = self._data_path(ino)
                if not os.path.exists(path):
                    open(path, "wb").close()
                node.fd = os.open(path, os.O_RDWR)
                node.size = node.dsize = node.lo = os.fstat(node.fd).st_size
            self.inodes[ino] = node
        for node in self.inodes.values():
            for child in node.entries.values():
                self.inodes[child].nlink += 1
        self.inodes[pyfuse3.ROOT_INODE].nlink = 1
        # Data of inodes no durable name reaches (created or fsynced, never linked durably) is gone.
        for name in os.listdir(self.data_dir):
            if not name.isdigit() or int(name) not in self.inodes:
                os.unlink(os.path.join(self.data_dir, name))
            else:
                self.next_ino = max(self.next_ino, int(name) + 1)

    def _durable_reach(self) -> Dict[int, int]:
        """Inodes reached from the root through durable entries, with their durable link count."""
        seen = {pyfuse3.ROOT_INODE: 1}
        todo = [pyfuse3.ROOT_INODE]
        while todo:
            node = self.inodes[todo.pop()]
            for child in node.durable_entries.values():
                if child in seen:
                    seen[child] += 1
                    continue
                seen[child] = 1
                if self.inodes[child].kind == "dir":
                    todo.append(child)
        return seen

    def _write_meta(self) -> None:
        reach = self._durable_reach()
        inodes = {}
        for ino in reach:
            node = self.inodes[ino]
            if node.durable_attrs is None:
                node.durable_attrs = node.attrs()  # its name just became durable: the inode as it is now
            m = {"kind": node.kind, **node.durable_attrs}
            if node.kind == "dir":
                m["entries"] = {os.fsdecode(n): c for n, c in sorted(node.durable_entries.items())}
            inodes[str(ino)] = m
        tmp = os.path.join(self.store, "meta.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"next_ino": self.next_ino, "inodes": inodes}, f)
        os.replace(tmp, os.path.join(self.store, "meta.json"))
        for ino in [i for i, n in self.inodes.items() if i not in reach]:
            self._maybe_forget(ino, reach)

    def _maybe_forget(self, ino: int, reach: Optional[Dict[int, int]] = None) -> None:
        node = self.inodes.get(ino)
        if node is None or ino == pyfuse3.ROOT_INODE or node.nlink or node.lookups or node.opens:
            return
        if ino in (reach if reach is not None else self._durable_reach()):
            return  # unlinked, but the unlink is not durable yet: its durable bytes must stay
        if node.fd is not None:
            os.close(node.fd)
            os.unlink(self._data_path(ino))
        del self.inodes[ino]

    # ------------------------------------------------------------------------------ file contents
    def _view(self, node: Inode, off: int, n: int) -> bytearray:
        """n bytes at off as a reader sees them now (not clamped to the size)."""
        buf = bytearray()
        if off < node.lo:
            buf = bytearray(os.pread(node.fd, min(n, node.lo - off), off))
        if len(buf) < n:
            buf.extend(bytes(n - len(buf)))
        if node.pages:
            end = off + n
            for p in self._pages_in(node, off, end):
                pg = node.pages[p]
                start = p * PAGE
                a, b = max(off, start), min(end, start + PAGE)
                buf[a - off:b - off] = pg[a - start:b - start]
        return buf

    @staticmethod
    def _pages_in(node: Inode, off: int, end: int) -> Iterator[int]:
        first, last = off // PAGE, (end - 1) // PAGE
        if last - first + 1 <= len(node.pages):
            return (p for p in range(first, last + 1) if p in node.pages)
        return (p for p in sorted(node.pages) if first <= p <= last)

    def _write(self, node: Inode, off: int, data: bytes) -> None:
        end = off + len(data)
        pos = off
        mv = memoryview(data)
        while pos < end:
            p = pos // PAGE
            start = p * PAGE
            pg = node.pages.get(p)
            if pg is None:
                pg = node.pages[p] = self._view(node, start, PAGE)
            b = min(PAGE, end - start)
            pg[pos - start:b] = mv[pos - off:start + b - off]
            pos = start + b
        node.size = max(node.size, end)
        node.mtime = node.ctime = time.time_ns()

    def _truncate(self, node: Inode, size: int) -> None:
        if size < node.size:
            for p in [p for p in node.pages if p * PAGE >= size]:
                del node.pages[p]
            p = size // PAGE
            if p in node.pages:
                pg = node.pages[p]
                cut = size - p * PAGE
                pg[cut:] = bytes(PAGE - cut)
        node.lo = min(node.lo, size)
        node.size = size
        node.mtime = node.ctime = time.time_ns()

    def _sync(self, node: Inode) -> None:
        self.stats["fsyncs"] += 1
        if node.kind != "file":
            return
        if node.lo < node.dsize:
            os.ftruncate(node.fd, node.lo)
        for p in sorted(node.pages):
            start = p * PAGE
            if start < node.size:
                chunk = node.pages[p][:min(PAGE, node.size - start)]
                os.pwrite(node.fd, chunk, start)
                self.stats["bytes_synced"] += len(chunk)
        os.ftruncate(node.fd, node.size)
        node.pages.clear()
        node.dsize = node.lo = node.size
        before, node.durable_attrs = node.durable_attrs, node.attrs()
        if before is not None and any(before[k] != node.durable_attrs[k] for k in ("mode", "uid", "gid")) \
                and node.ino in self._durable_reach():
            self._write_meta()  # a durable file's new mode or owner

    # ------------------------------------------------------------------------------ helpers
    def _node(self, ino: int) -> Inode:
        node = self.inodes.get(ino)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _dir(self, ino: int) -> Inode:
        node = self._node(ino)
        if node.kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def _entry(self, node: Inode) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = node.ino
        e.generation = 0
        e.entry_timeout = TIMEOUT
        e.attr_timeout = TIMEOUT
        e.st_mode = node.mode
        e.st_nlink = max(node.nlink, 1) if node.kind == "dir" else node.nlink
        e.st_uid = node.uid
        e.st_gid = node.gid
        e.st_rdev = 0
        e.st_size = node.size if node.kind == "file" else 4096
        e.st_blksize = 4096
        e.st_blocks = (e.st_size + 511) // 512
        e.st_atime_ns = node.atime
        e.st_mtime_ns = node.mtime
        e.st_ctime_ns = node.ctime
        return e

    def _new_inode(self, kind: str, mode: int, ctx) -> Inode:
        ino = self.next_ino
        self.next_ino += 1
        node = Inode(ino, kind, mode, ctx.uid, ctx.gid)
        if kind == "file":
            path = self._data_path(ino)
            node.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.inodes[ino] = node
        return node

    def _link(self, parent: Inode, name: bytes, node: Inode) -> None:
        parent.entries[name] = node.ino
        node.nlink += 1
        parent.mtime = parent.ctime = time.time_ns()

    def _unlink_entry(self, parent: Inode, name: bytes) -> Inode:
        node = self.inodes[parent.entries.pop(name)]
        node.nlink -= 1
        node.ctime = parent.mtime = parent.ctime = time.time_ns()
        return node

    # ------------------------------------------------------------------------------ operations
    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._dir(parent_inode)
        ino = parent.entries.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node = self.inodes[ino]
        node.lookups += 1
        return self._entry(node)

    async def forget(self, inode_list):
        for ino, n in inode_list:
            node = self.inodes.get(ino)
            if node is not None:
                node.lookups = max(0, node.lookups - n)
                self._maybe_forget(ino)

    async def getattr(self, inode, ctx=None):
        return self._entry(self._node(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        if fields.update_size:
            if node.kind != "file":
                raise pyfuse3.FUSEError(errno.EISDIR)
            self._truncate(node, attr.st_size)
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime = attr.st_mtime_ns
        node.ctime = time.time_ns()
        return self._entry(node)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)
        return self._entry(self._create(parent_inode, name, mode, ctx))

    def _create(self, parent_inode, name, mode, ctx) -> Inode:
        parent = self._dir(parent_inode)
        if name in parent.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = self._new_inode("file", stat.S_IFREG | stat.S_IMODE(mode), ctx)
        self._link(parent, name, node)
        node.lookups += 1
        return node

    async def create(self, parent_inode, name, mode, flags, ctx):
        node = self._create(parent_inode, name, mode, ctx)
        fh = self._open_handle(node)
        return pyfuse3.FileInfo(fh=fh), self._entry(node)

    async def mkdir(self, parent_inode, name, mode, ctx):
        parent = self._dir(parent_inode)
        if name in parent.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = self._new_inode("dir", stat.S_IFDIR | stat.S_IMODE(mode), ctx)
        self._link(parent, name, node)
        node.lookups += 1
        return self._entry(node)

    async def unlink(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        ino = parent.entries.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.inodes[ino].kind == "dir":
            raise pyfuse3.FUSEError(errno.EISDIR)
        self._maybe_forget(self._unlink_entry(parent, name).ino)

    async def rmdir(self, parent_inode, name, ctx):
        parent = self._dir(parent_inode)
        ino = parent.entries.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node = self.inodes[ino]
        if node.kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if node.entries:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        self._maybe_forget(self._unlink_entry(parent, name).ino)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old, new = self._dir(parent_inode_old), self._dir(parent_inode_new)
        if name_old not in old.entries:
            raise pyfuse3.FUSEError(errno.ENOENT)
        moving = self.inodes[old.entries[name_old]]
        target_ino = new.entries.get(name_new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            if target_ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            old.entries[name_old], new.entries[name_new] = target_ino, moving.ino
            old.mtime = new.mtime = time.time_ns()
            return
        if target_ino is not None:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise pyfuse3.FUSEError(errno.EEXIST)
            if target_ino == moving.ino:
                return
            target = self.inodes[target_ino]
            if target.kind == "dir" and moving.kind != "dir":
                raise pyfuse3.FUSEError(errno.EISDIR)
            if target.kind != "dir" and moving.kind == "dir":
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if target.kind == "dir" and target.entries:
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            self._unlink_entry(new, name_new)
        self._unlink_entry(old, name_old)
        self._link(new, name_new, moving)
        if target_ino is not None:
            self._maybe_forget(target_ino)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    async def symlink(self, parent_inode, name, target, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    def _open_handle(self, node: Inode) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node.ino
        node.opens += 1
        return fh

    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        if node.kind == "dir":
            raise pyfuse3.FUSEError(errno.EISDIR)
        return pyfuse3.FileInfo(fh=self._open_handle(node))

    async def read(self, fh, off, size):
        node = self.inodes[self.handles[fh]]
        n = max(0, min(size, node.size - off))
        return bytes(self._view(node, off, n)) if n else b""

    async def write(self, fh, off, buf):
        self._write(self.inodes[self.handles[fh]], off, buf)
        return len(buf)

    async def flush(self, fh):
        pass

    async def release(self, fh):
        ino = self.handles.pop(fh)
        node = self.inodes.get(ino)
        if node is not None:
            node.opens -= 1
            self._maybe_forget(ino)

    async def fsync(self, fh, datasync):
        self._sync(self.inodes[self.handles[fh]])

    async def opendir(self, inode, ctx):
        return self._open_handle(self._dir(inode))

    async def readdir(self, fh, start_id, token):
        node = self.inodes[self.handles[fh]]
        names = sorted(node.entries)
        for i in range(start_id, len(names)):
            child = self.inodes[node.entries[names[i]]]
            if not pyfuse3.readdir_reply(token, names[i], self._entry(child), i + 1):
                return
            child.lookups += 1

    async def releasedir(self, fh):
        await self.release(fh)

    async def fsyncdir(self, fh, datasync):
        node = self.inodes[self.handles[fh]]
        self.stats["fsyncdirs"] += 1
        node.durable_entries = dict(node.entries)
        node.durable_attrs = node.attrs()
        self._write_meta()

    async def statfs(self, ctx):
        st = os.statvfs(self.store)
        s = pyfuse3.StatvfsData()
        for a in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
                  "f_namemax"):
            setattr(s, a, getattr(st, a))
        return s

    async def getxattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode, ctx):
        return []

    async def setxattr(self, inode, name, value, ctx):
        raise pyfuse3.FUSEError(errno.ENOTSUP)

    async def removexattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    # ------------------------------------------------------------------------------ the cut
    def _path_of(self, ino: int) -> str:
        for pino, parent in self.inodes.items():
            if parent.kind == "dir":
                for name, child in parent.entries.items():
                    if child == ino:
                        base = "" if pino == pyfuse3.ROOT_INODE else self._path_of(pino) + "/"
                        return base + os.fsdecode(name)
        return f"<unlinked inode {ino}>"

    def drop_report(self) -> dict:
        """What the power cut throws away."""
        files: List[dict] = []
        for node in self.inodes.values():
            if node.kind == "file" and (node.pages or node.lo < node.dsize or node.size != node.dsize):
                unsynced = sum(max(0, min(PAGE, node.size - p * PAGE)) for p in node.pages)
                files.append({"path": self._path_of(node.ino), "unsynced_bytes": unsynced,
                              "size": node.size, "durable_size": node.dsize,
                              "truncated": node.lo < node.dsize})
        dirs: List[dict] = []
        for node in self.inodes.values():
            if node.kind == "dir" and node.entries != node.durable_entries:
                cur, dur = node.entries, node.durable_entries
                dirs.append({"path": self._path_of(node.ino) if node.ino != pyfuse3.ROOT_INODE else "/",
                             "not_durable": sorted(os.fsdecode(n) for n in cur if dur.get(n) != cur[n]),
                             "comes_back": sorted(os.fsdecode(n) for n in dur if cur.get(n) != dur[n])})
        return {"files": sorted(files, key=lambda f: f["path"]), "dirs": dirs, **self.stats}


async def _cut_on_signal(fs: LossyFS, report: Optional[str]) -> None:
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            if report:
                try:
                    with open(report, "w") as f:
                        json.dump(fs.drop_report(), f, indent=1)
                except OSError:
                    pass
            os._exit(0)


async def _main(fs: LossyFS, report: Optional[str]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cut_on_signal, fs, report)
        await pyfuse3.main()


def main(argv: List[str]) -> int:
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--cut-report"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    store, mountpoint = argv[1], argv[2]
    report = argv[4] if len(argv) == 5 else None
    fs = LossyFS(store)
    options = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
    options.add("fsname=lossyfs")
    pyfuse3.init(fs, mountpoint, options)
    print("lossyfs: mounted", flush=True)
    try:
        trio.run(_main, fs, report)
    finally:
        pyfuse3.close(unmount=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
