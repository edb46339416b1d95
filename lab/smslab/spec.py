"""The lab's shape: which hosts exist, their roles, platforms and logon servers.

A Spec is pure data, derived only from the build options, so building the same
options twice gives the same lab. It is written to <root>/lab.json.
"""

import dataclasses
import functools

SITE_SERVER = "smssite"
SITE_CODE = "LAB"
INITIAL_COPY_LIST_VERSION = 41
PLATFORMS = ("x86", "alpha")
PLATFORM_DIRS = {"x86": "X86.bin", "alpha": "Alpha.bin", "mips": "Mips.bin"}


class SpecError(ValueError):
    pass


def _name(prefix, i, n):
    return "%s%0*d" % (prefix, max(2, len(str(n))), i)


@dataclasses.dataclass
class Spec:
    logon_servers: int = 2
    clients: int = 12
    alpha: int = 2
    hung: int = 1
    smsrun: bool = True
    mm: bool = True
    cycle: float = 10.0
    idle_timeout: float = 1800.0
    skip: tuple = ()

    def __post_init__(self):
        self.skip = tuple(sorted({s.lower() for s in self.skip}))
        if self.logon_servers < 0:
            raise SpecError("--logon-servers must be >= 0")
        if self.clients < 1:
            raise SpecError("--clients must be >= 1")
        if not 0 <= self.alpha <= self.clients:
            raise SpecError("--alpha must be between 0 and --clients")
        if not 0 <= self.hung <= self.clients - self.alpha:
            raise SpecError("--hung must be between 0 and the number of x86 clients (%d)"
                            % (self.clients - self.alpha))
        if self.cycle <= 0:
            raise SpecError("--cycle must be > 0")
        if self.idle_timeout <= 0:
            raise SpecError("--idle-timeout must be > 0")
        for host in self.skip:
            if host not in self.logon_server_names:
                raise SpecError("--skip %s: not a logon server of this lab (%s)"
                                % (host, ", ".join(self.logon_server_names)))

    # -- hosts ---------------------------------------------------------------
    @property
    def site_server(self):
        return SITE_SERVER

    @functools.cached_property
    def logon_server_names(self):
        """Every logon server, the site server first."""
        return [SITE_SERVER] + [_name("logon", i, self.logon_servers)
                                for i in range(1, self.logon_servers + 1)]

    @functools.cached_property
    def client_names(self):
        return [_name("client", i, self.clients) for i in range(1, self.clients + 1)]

    @functools.cached_property
    def _client_index(self):
        return {c: i for i, c in enumerate(self.client_names)}

    def platform(self, client):
        index = self._client_index[client]
        return "alpha" if index >= self.clients - self.alpha else "x86"

    def clients_of(self, platform):
        return [c for c in self.client_names if self.platform(c) == platform]

    def logon_server_of(self, client):
        servers = self.logon_server_names
        return servers[self._client_index[client] % len(servers)]

    def unique_id(self, client):
        return "%s%05d" % (SITE_CODE, self._client_index[client] + 1)

    @functools.cached_property
    def hung_clients(self):
        return self.clients_of("x86")[: self.hung]

    @property
    def upper_smssrv_client(self):
        """The one client whose BIN holds SMSSRV32.EXE in upper case."""
        names = self.client_names
        return names[1] if len(names) > 1 else names[0]

    @property
    def all_hosts(self):
        return self.logon_server_names + self.client_names

    # -- (de)serialisation ---------------------------------------------------
    def to_dict(self):
        return {
            "format": 1,
            "site_code": SITE_CODE,
            "options": {
                "logon_servers": self.logon_servers,
                "clients": self.clients,
                "alpha": self.alpha,
                "hung": self.hung,
                "smsrun": self.smsrun,
                "mm": self.mm,
                "cycle": self.cycle,
                "idle_timeout": self.idle_timeout,
                "skip": list(self.skip),
            },
            "site_server": SITE_SERVER,
            "logon_servers": self.logon_server_names,
            "clients": [
                {
                    "name": c,
                    "platform": self.platform(c),
                    "logon_server": self.logon_server_of(c),
                    "unique_id": self.unique_id(c),
                    "hung": c in self.hung_clients,
                }
                for c in self.client_names
            ],
            "initial_copy_list_version": INITIAL_COPY_LIST_VERSION,
        }

    @classmethod
    def from_dict(cls, data):
        opts = data.get("options", data)
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in opts.items() if k in fields}
        if "skip" in kwargs:
            kwargs["skip"] = tuple(kwargs["skip"])
        return cls(**kwargs)


def as_spec(spec):
    """Accept a Spec, a lab.json dict or an options dict."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        return Spec.from_dict(spec)
    raise TypeError("spec must be a Spec or a dict, not %r" % type(spec).__name__)
