"""Verify and the verified pull, against an SBOM the real cosign signed
(clients/testenv.sh makes it)."""

import grpc
import pytest

from satchel import SatchelError

SBOM = "application/vnd.cyclonedx+json"


def test_a_cosign_signature_verifies_under_its_key(client, env):
    result = client.verify(env["SATCHEL_SIGNED_SBOM"], keys=[env["SATCHEL_SIGNING_KEY"]], plain_http=True)
    assert result.reference == env["SATCHEL_SIGNED_SBOM"]
    assert result.signature.form == "sigstore-bundle-v0.3"
    assert result.signature.key_fingerprint.startswith("sha256:")
    assert result.signature.predicate_type == "https://sigstore.dev/cosign/sign/v1"


def test_another_key_and_an_unsigned_image_are_refused(client, env):
    with pytest.raises(SatchelError) as other:
        client.verify(env["SATCHEL_SIGNED_SBOM"], keys=[env["SATCHEL_OTHER_KEY"]], plain_http=True)
    assert other.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(SatchelError) as unsigned:
        client.verify(env["SATCHEL_SIGNED_SUBJECT"], keys=[env["SATCHEL_SIGNING_KEY"]], plain_http=True)
    assert unsigned.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_the_verified_pull_names_its_signature(client, env, tmp_path):
    with open(env["SATCHEL_SIGNING_KEY"], "rb") as f:
        pem = f.read()
    pulled = client.pull(
        env["SATCHEL_SIGNED_SUBJECT"],
        artifact_type=SBOM,
        verify_keys=[pem],
        output_dir=tmp_path / "ok",
        plain_http=True,
    )
    assert pulled.reference == env["SATCHEL_SIGNED_SBOM"]
    assert pulled.signature is not None and pulled.signature.form == "sigstore-bundle-v0.3"
    assert (tmp_path / "ok" / "sbom.cdx.json").exists()
    with pytest.raises(SatchelError) as refused:
        client.pull(
            env["SATCHEL_SIGNED_SUBJECT"],
            artifact_type=SBOM,
            verify_keys=[env["SATCHEL_OTHER_KEY"]],
            output_dir=tmp_path / "refused",
            plain_http=True,
        )
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert not (tmp_path / "refused").exists()


def test_discover_says_which_referrers_verify(client, env):
    referrers = client.discover(
        env["SATCHEL_SIGNED_SUBJECT"], verify_keys=[env["SATCHEL_SIGNING_KEY"]], plain_http=True
    )
    sbom = env["SATCHEL_SIGNED_SBOM"].split("@", 1)[1]
    [signed] = [r for r in referrers if r.digest == sbom]
    assert signed.verification is not None and signed.verification.verified
    assert signed.verification.signature.form == "sigstore-bundle-v0.3"
