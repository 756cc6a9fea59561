import pytest
from pydantic import BaseModel

from gateway.config import ConfigError, load_settings


def write(tmp_path, text):
    path = tmp_path / "xtreemgate.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.database_url == f"sqlite:///{tmp_path / 'var' / 'xtreemgate.db'}"
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.token_issuer.startswith("urn:xtreemgate:")  # not tied to the listen port
    assert load_settings(server={"public_url": "https://gw.example.org/"}).token_issuer == (
        "https://gw.example.org"
    )
    assert (s.backends.execution, s.backends.vm, s.backends.storage, s.backends.vo) == (
        "local",
        "libvirt",
        "posix",
        "sql",
    )


def test_environment_beats_file_and_merges_sections(tmp_path, monkeypatch):
    path = write(
        tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n[auth.tokens]\nlifetime = 600\n'
    )
    monkeypatch.setenv("XTREEMGATE_SERVER__PORT", "9001")
    monkeypatch.setenv("XTREEMGATE_AUTH__TOKENS__AUDIENCE", "other")
    s = load_settings(path)
    assert s.server.port == 9001
    assert s.server.host == "0.0.0.0"
    assert s.auth.tokens.lifetime == 600
    assert s.auth.tokens.audience == "other"


def test_config_file_from_environment_variable(tmp_path, monkeypatch):
    path = write(tmp_path, "[server]\nport = 7000\n")
    monkeypatch.setenv("XTREEMGATE_CONFIG", str(path))
    assert load_settings().server.port == 7000


def test_every_problem_is_named_with_key_and_env_variable(tmp_path, monkeypatch):
    path = write(tmp_path, '[server]\nprot = 1\n[auth.tokens]\nalgorithm = "HS256"\n')
    monkeypatch.setenv("XTREEMGATE_SERVER__WORKERS", "many")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert str(path) in text
    assert "server.prot: unknown key" in text
    assert (
        "auth.tokens.algorithm: Input should be 'ES256', 'RS256' or 'EdDSA' (got 'HS256')" in text
    )
    assert "[env XTREEMGATE_SERVER__WORKERS]" in text and "'many'" in text
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nport = 70000\n", "server.port: Input should be less than or equal to 65535"),
        ('[database]\nurl = "mysql://x"\n', "database.url: Value error, only sqlite"),
        (
            '[auth]\nchain = ["kerberos"]\n',
            "auth.chain.0: Input should be 'bearer', 'basic', 'negotiate', 'wss', 'x509' or 'saml'",
        ),
        ("[server\nport = 1", "not valid TOML"),
    ],
)
def test_bad_values_are_refused(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=None) as caught:
        load_settings(write(tmp_path, text))
    assert fragment in str(caught.value)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_example_config_is_valid_and_complete(monkeypatch):
    from pathlib import Path

    example = Path(__file__).parents[2] / "xtreemgate.example.toml"
    s = load_settings(example)
    assert s.server.port == 8080
    # every setting is documented in the example: the example sets every key
    import tomllib

    data = tomllib.loads(example.read_text())

    def keys(model, prefix=""):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                yield from keys(value, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    def lookup(path):
        node = data
        for part in path.split("."):
            node = node[part]
        return node

    for key in keys(s):
        lookup(key)  # KeyError names an undocumented key


def test_saml_session_in_chain_needs_saml_enabled():
    with pytest.raises(ConfigError, match=r"saml\.enabled is false"):
        load_settings(None, auth={"chain": ["bearer", "saml"]})
    s = load_settings(None, auth={"chain": ["saml", "bearer"]}, saml={"enabled": True})
    assert s.auth.chain == ["saml", "bearer"]
    assert s.saml_entity_id == "http://127.0.0.1:8080/saml/metadata"


def test_plugin_sections_keep_their_keys_and_variables(monkeypatch):
    """[execution], [vm], [storage] and [vo] are declared by the installed plugins (and,
    for [storage] and [vo], partly by the gateway): same keys, same variables."""
    monkeypatch.setenv("XTREEMGATE_EXECUTION__SLURM__PARTITION", "gpu")
    monkeypatch.setenv("XTREEMGATE_VO__LEASE_IDLE_SECONDS", "60")
    s = load_settings(None, storage={"root": "/srv/volumes", "image_volume": "images"})
    assert s.execution.slurm.partition == "gpu"
    assert (s.execution.default_account, s.execution.max_running) == ("nobody", 64)
    assert (s.storage.root, s.storage.image_volume) == ("/srv/volumes", "images")
    assert (s.vo.lease_idle_seconds, s.vo.tokens.lifetime) == (60, 300)
    assert sorted(s.vm.sizes) == ["large", "medium", "small"]


def test_a_plugins_own_check_names_the_key_and_the_variable():
    pool = {"accounts": ["Bad!"], "uid_start": 1000, "gid": 1000}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, vo={"pools": {"cms": pool}})
    assert caught.value.problems == [
        "vo.pools.cms.accounts: Value error, 'Bad!' is neither a POSIX user name nor a range "
        "like 'vo1pool001..vo1pool050' (got ['Bad!']) [env XTREEMGATE_VO__POOLS__CMS__ACCOUNTS]"
    ]
