"""aevolve._trust.secrets: secret patterns, this machine's secret values, and redaction.

Secrets are built by concatenation so that no scanner mistakes this file for a leak.
"""

from __future__ import annotations

import copy

import pytest

from aevolve._trust.secrets import find_secrets, leaked_names, redact, redact_obj, secret_values

AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" + "/K1SZFPTOtr/KBHBeksoGMGw=="
NEW_FORMATS = {
    "Stripe API key": "STRIPE = sk_live_" + "51H8xQ2eZvKYlo2C0a1b2c3d4e5f6g7h8",
    "Stripe restricted key": "rk_live_" + "51H8xQ2eZvKYlo2C0a1b2c3d4e5f6g7h8",
    "Stripe test key": "use sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc here",
    "GitLab token": "PRIVATE-TOKEN: glpat-" + "xY3zA5bC7dE9fG1hJ3kL",
    "Azure storage account key": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + AZURE_KEY
                                 + ";EndpointSuffix=core.windows.net",
    "Hugging Face token": "HF: hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "npm token": "//registry.npmjs.org/:_authToken=npm_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "PyPI token": "password = pypi-AgEIcHlwaS5vcmc" + ("CJDU2YjRjY2NhLTc1NmItNGJhNC1iMTZmLWE4ZTE2NDFmMWIzNwAC"
                                                       "JXsicGVybWlzc2lvbnMiOiAidXNlciJ9"),
}
KIND = {"Stripe restricted key": "Stripe API key", "Stripe test key": "Stripe API key"}


@pytest.mark.parametrize("name", sorted(NEW_FORMATS))
def test_each_new_provider_format_is_found_and_redacted_by_its_kind(name):
    kind = KIND.get(name, name)
    text = "line one\n" + NEW_FORMATS[name]

    assert kind in [hit.kind for hit in find_secrets(text)]
    redacted = redact(text, [])
    assert f"[REDACTED {kind}]" in redacted
    assert find_secrets(redacted) == []


@pytest.mark.parametrize("text", [
    "Call hf_hub_download to fetch the model weights before the first run.",
    "npm_config_cache points npm at a shared cache folder.",
    "Put the AccountKey in the connection string, never in the prompt.",
    "The sk_live_ prefix marks live Stripe keys; sk_test_ marks test ones.",
    "GitLab tokens start with glpat- and expire after a year.",
    "Upload with a pypi-AgEI token from the account settings page.",
    "The refund window is 30 days; after that, offer store credit.",
])
def test_an_ordinary_sentence_is_not_a_secret(text):
    assert find_secrets(text) == []
    assert redact(text, []) == text


def test_secret_values_takes_variables_whose_name_says_secret_in_any_case():
    env = {"OPENAI_API_KEY": "sk-run-key-0123456789", "github_token": "gh-value-abcdefgh",
           "DB_PASSWORD": "correct horse battery", "MY_SECRET_SAUCE": "ketchup-and-mayo", "HOME_DIR": "not-a-secret-1"}

    assert sorted(secret_values(env)) == sorted(
        ["sk-run-key-0123456789", "gh-value-abcdefgh", "correct horse battery", "ketchup-and-mayo"])


def test_secret_values_adds_the_named_variables_whatever_their_name():
    env = {"LLM_CREDENTIAL": "cred-0123456789", "EDITOR": "vim-is-great"}

    assert secret_values(env, names=["LLM_CREDENTIAL"]) == ["cred-0123456789"]
    assert secret_values(env) == []


def test_secret_values_are_deduplicated_longest_first():
    env = {"A_TOKEN": "abcdefgh12", "B_TOKEN": "abcdefgh12", "C_KEY": "abcdefgh12345678", "D_KEY": "zz-secret-9"}

    assert secret_values(env) == ["abcdefgh12345678", "zz-secret-9", "abcdefgh12"]


def test_short_values_switches_numbers_and_existing_paths_are_not_secrets(tmp_path):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("not read\n")
    env = {"API_KEY": "short", "TOKENIZERS_PARALLELISM": "false", "SECRET_ENABLED": "disabled",
           "TOKEN_TTL_SECONDS": "86400000", "AEVOLVE_SIGNING_KEY": str(key_file),
           "PASSWORD_STORE_DIR": str(tmp_path), "REAL_TOKEN": "/not/a/real/path/but-secret"}

    assert secret_values(env) == ["/not/a/real/path/but-secret"]


def test_secret_values_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("SERVICE_TOKEN", "from-the-environment-42")

    assert "from-the-environment-42" in secret_values()


def test_redact_replaces_every_occurrence_of_each_value():
    text = "key=abc123-secret-value; again abc123-secret-value."

    assert redact(text, ["abc123-secret-value"]) == "key=[REDACTED]; again [REDACTED]."


def test_redact_replaces_the_longer_value_whole_when_one_contains_another():
    assert redact("x abcdefgh-and-more y", ["abcdefgh", "abcdefgh-and-more"]) == "x [REDACTED] y"


def test_redact_by_default_uses_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-run-key-0123456789")

    assert redact("the key is sk-run-key-0123456789") == "the key is [REDACTED]"


def test_redact_with_no_values_still_redacts_patterns_and_keeps_the_rest():
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

    assert redact(f"it printed {token} twice", []) == "it printed [REDACTED GitHub token] twice"


def test_redact_keeps_an_assignments_name_and_only_when_the_value_looks_random():
    assert redact('password = "x7#Kq9!zR2mP4vL8wT"', []) == 'password = "[REDACTED password assignment]"'
    assert redact("password: changeme-please-now", []) == "password: changeme-please-now"


def test_redact_removes_a_whole_private_key_block():
    block = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACD\n"
             "-----END OPENSSH PRIVATE KEY-----")

    assert redact(f"before\n{block}\nafter", []) == "before\n[REDACTED private key]\nafter"


def test_redact_obj_redacts_every_string_of_a_deep_copy_keys_included():
    value = "sk-run-key-0123456789"
    report = {"cases": [{"id": "c1", "errors": [f"stderr: using {value}"], "passes": 3, "ok": True}],
              value: "a key as a key", "score": 0.5, "none": None}
    original = copy.deepcopy(report)

    out = redact_obj(report, [value])

    assert out == {"cases": [{"id": "c1", "errors": ["stderr: using [REDACTED]"], "passes": 3, "ok": True}],
                   "[REDACTED]": "a key as a key", "score": 0.5, "none": None}
    assert report == original


def test_leaked_names_names_the_variables_never_the_values():
    env = {"OPENAI_API_KEY": "sk-run-key-0123456789", "GITHUB_TOKEN": "gh-value-abcdefgh", "LLM_CRED": "cred-0123456"}
    text = "diagnosis: the key sk-run-key-0123456789 and cred-0123456 were printed"

    assert leaked_names(text, env, names=["LLM_CRED"]) == ["LLM_CRED", "OPENAI_API_KEY"]
    assert leaked_names("nothing here", env) == []
