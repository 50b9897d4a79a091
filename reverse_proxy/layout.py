"""Where one Berth nginx keeps everything: <data dir>/nginx/ (configuration, vhosts, pid file,
logs, temp dirs), so it runs beside, and never touches, a system nginx or /etc/nginx."""
import dataclasses
import os

from core import data_paths


@dataclasses.dataclass(frozen=True)
class Layout:
    root: str

    @classmethod
    def of(cls, data_dir: str) -> "Layout":
        return cls(data_paths.nginx(os.path.abspath(data_dir)))

    @property
    def conf(self) -> str:
        return os.path.join(self.root, "nginx.conf")

    @property
    def sites(self) -> str:
        return os.path.join(self.root, "sites")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.root, "nginx.pid")

    @property
    def error_log(self) -> str:
        return os.path.join(self.logs, "error.log")

    @property
    def start_log(self) -> str:
        return os.path.join(self.logs, "start.log")

    @property
    def candidate(self) -> str:
        """Where a change is tried out with `nginx -t` before it replaces the working files."""
        return os.path.join(self.root, "candidate")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, ".lock")

    def make_dirs(self) -> None:
        for d in (self.root, self.sites, self.logs, self.tmp):
            os.makedirs(d, mode=0o700, exist_ok=True)
