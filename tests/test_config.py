import os
import stat

import pytest

from feature_store.config import DEFAULT_CONFIG, ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "conf.yaml"
    path.write_text(text)
    return path


ENV = {"MARQUEE_PSEUDONYMIZATION_KEY": "k" * 32}


def test_defaults_load_and_resolve_state_under_repository_root():
    config = load_config(DEFAULT_CONFIG, environ=ENV)
    repo = DEFAULT_CONFIG.parent.parent
    assert config.paths.lake == str(repo / ".marquee" / "lake")
    assert config.spark.master == "local[2]"
    assert config.generator.accounts == 5000


def test_unknown_section_names_file_and_key(tmp_path):
    path = write(tmp_path, "spork:\n  master: local\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'spork'"):
        load_config(path, environ=ENV)


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    path = write(tmp_path, "spark:\n  shuffle_partitons: 4\n")
    with pytest.raises(ConfigError, match=r"conf.yaml: unknown key 'spark.shuffle_partitons'"):
        load_config(path, environ=ENV)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spark:\n  shuffle_partitions: many\n", "key 'spark.shuffle_partitions' must be int"),
        ("spark:\n  shuffle_partitions: 0\n", "key 'spark.shuffle_partitions' must be at least 1"),
        (
            "ingest:\n  max_quarantine_share: 1.5\n",
            "key 'ingest.max_quarantine_share' must be between",
        ),
        ("generator:\n  start_date: someday\n", "key 'generator.start_date' must be date"),
        ("spark:\n  driver_memory: lots\n", "key 'spark.driver_memory' must look like"),
        ("spark:\n  ui_enabled: 1\n", "key 'spark.ui_enabled' must be bool"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), environ=ENV)


def test_overrides_are_typed_and_checked(tmp_path):
    path = write(tmp_path, "spark:\n  shuffle_partitions: 4\n")
    config = load_config(path, ["spark.shuffle_partitions=12", "generator.seed=3"], environ=ENV)
    assert (config.spark.shuffle_partitions, config.generator.seed) == (12, 3)
    with pytest.raises(ConfigError, match="unknown key 'generator.sed'"):
        load_config(path, ["generator.sed=3"], environ=ENV)
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(path, ["seed=3"], environ=ENV)


def test_key_in_file_is_refused(tmp_path):
    path = write(tmp_path, "privacy:\n  pseudonymization_key: abc\n")
    with pytest.raises(ConfigError, match="comes from the environment"):
        load_config(path, environ=ENV)


def test_key_comes_from_environment_and_never_shows_in_repr(tmp_path):
    path = write(tmp_path, f"paths:\n  state_dir: {tmp_path}/state\n")
    config = load_config(path, environ={"MARQUEE_PSEUDONYMIZATION_KEY": "s3cret-key-from-env-0001"})
    assert config.privacy.pseudonymization_key == "s3cret-key-from-env-0001"
    assert "s3cret" not in repr(config)
    assert not (tmp_path / "state" / "secrets").exists()


def test_short_key_is_refused(tmp_path):
    path = write(tmp_path, "spark: {}\n")
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_config(path, environ={"MARQUEE_PSEUDONYMIZATION_KEY": "short"})


def test_local_default_key_is_generated_once_and_private(tmp_path):
    path = write(tmp_path, f"paths:\n  state_dir: {tmp_path}/state\n")
    first = load_config(path, environ={}).privacy.pseudonymization_key
    second = load_config(path, environ={}).privacy.pseudonymization_key
    key_file = tmp_path / "state" / "secrets" / "pseudonymization.key"
    assert first == second and len(first) == 64
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_the_cluster_example_puts_the_lake_on_an_object_store_by_configuration_alone():
    """conf/cluster.example.yaml (infra/README.md): URIs pass through untouched, the s3a
    connector is one more package beside Delta's, in the session and in spark-submit."""
    from feature_store.spark import delta_maven_coordinates
    from feature_store.submit import submit_settings

    config = load_config(DEFAULT_CONFIG.parent / "cluster.example.yaml", environ=ENV)
    repo = DEFAULT_CONFIG.parent.parent
    assert config.paths.lake == "s3a://marquee/lake"
    assert config.paths.mlflow == "http://mlflow.marquee.svc:5000"
    assert config.paths.registry_policy == str(repo / "mlflow" / "registry.yaml")
    assert config.spark.master == "spark://spark-master.marquee.svc:7077"
    assert config.spark.extra_package_list == ["org.apache.hadoop:hadoop-aws:3.5.0"]
    settings = submit_settings(config)
    assert settings["packages"].split(",") == [
        *delta_maven_coordinates(),
        "org.apache.hadoop:hadoop-aws:3.5.0",
    ]
    assert settings["conf"]["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert settings["conf"]["spark.executor.memory"] == "16g"


def test_manifest_signing_keys_are_configured_by_path_and_public_key(tmp_path):
    from feature_store import doctor, signing
    from feature_store.config import manifest_signing_key_file

    default = load_config(write(tmp_path, f"paths:\n  state_dir: {tmp_path}/state\n"), environ=ENV)
    assert manifest_signing_key_file(default) == tmp_path / "state/secrets/manifest-signing.key"
    with pytest.raises(signing.SigningKeyError, match="set publish.trusted_public_key"):
        signing.trusted_public_key(default)  # nothing to trust yet, and none is made up
    assert doctor.manifest_signing_report(default).startswith("manifest signing key: none yet")
    assert not (tmp_path / "state" / "secrets").exists()

    # Generated once, owner-only, and its public half is what a local pull trusts.
    key = signing.signing_key(default)
    again = signing.signing_key(default)
    key_file = manifest_signing_key_file(default)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert signing.public_key_text(key) == signing.public_key_text(again)
    assert signing.trusted_public_key(default) == signing.public_key_text(key)
    assert doctor.manifest_signing_report(default) == (
        f"manifest signing public key: {signing.public_key_text(key)} "
        "(set publish.trusted_public_key to it on serving hosts)"
    )

    # A relative key path resolves against the file; a configured public key wins.
    other = signing.public_key_text(signing.Ed25519PrivateKey.generate())
    text = f"publish:\n  signing_key_file: keys/sign.pem\n  trusted_public_key: {other}\n"
    config = load_config(write(tmp_path, text), environ=ENV)
    assert manifest_signing_key_file(config) == tmp_path / "keys" / "sign.pem"
    assert signing.trusted_public_key(config) == other


@pytest.mark.parametrize("value", ["not-base64!", "c2hvcnQ=", "QUFB" * 20])
def test_a_trusted_public_key_that_is_not_32_bytes_of_base64_is_refused(tmp_path, value):
    path = write(tmp_path, f"publish:\n  trusted_public_key: '{value}'\n")
    with pytest.raises(ConfigError, match="key 'publish.trusted_public_key' must be the base64"):
        load_config(path, environ=ENV)
