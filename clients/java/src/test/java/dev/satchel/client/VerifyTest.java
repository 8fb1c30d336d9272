package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.satchel.v1.VerifyResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Verify and the verified pull, against an SBOM the real cosign signed (testenv makes it). */
class VerifyTest extends LiveTest {
  static final String SBOM_TYPE = "application/vnd.cyclonedx+json";

  private Options withKey(String var) throws Exception {
    return Options.builder()
        .plainHttp(true)
        .artifactType(SBOM_TYPE)
        .verifyKey(Files.readAllBytes(Path.of(env.vars.get(var))))
        .outputDir(work.resolve(var + "-" + System.nanoTime()))
        .build();
  }

  @Test
  void aCosignSignatureVerifiesUnderItsKeyOnly() throws Exception {
    String sbom = env.vars.get("SATCHEL_SIGNED_SBOM");
    VerifyResponse ok = client.verify(sbom, withKey("SATCHEL_SIGNING_KEY"));
    assertEquals(sbom, ok.getReference());
    assertEquals("sigstore-bundle-v0.3", ok.getSignature().getForm());
    assertTrue(ok.getSignature().getKeyFingerprint().matches("sha256:[0-9a-f]{64}"));
    StatusRuntimeException other =
        assertThrows(
            StatusRuntimeException.class, () -> client.verify(sbom, withKey("SATCHEL_OTHER_KEY")));
    assertEquals(Status.Code.PERMISSION_DENIED, other.getStatus().getCode());
    StatusRuntimeException unsigned =
        assertThrows(
            StatusRuntimeException.class,
            () -> client.verify(env.vars.get("SATCHEL_SIGNED_SUBJECT"), withKey("SATCHEL_SIGNING_KEY")));
    assertEquals(Status.Code.FAILED_PRECONDITION, unsigned.getStatus().getCode());
  }

  @Test
  void theVerifiedPullNamesItsSignatureAndWritesNothingOtherwise() throws Exception {
    String subject = env.vars.get("SATCHEL_SIGNED_SUBJECT");
    PullResult pulled = client.pullAttachment(subject, withKey("SATCHEL_SIGNING_KEY"));
    assertEquals(env.vars.get("SATCHEL_SIGNED_SBOM"), pulled.manifest().getReference());
    assertEquals("sigstore-bundle-v0.3", pulled.manifest().getSignature().getForm());
    Options refused = withKey("SATCHEL_OTHER_KEY");
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> client.pullAttachment(subject, refused));
    assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
    assertFalse(Files.exists(refused.outputDir()));
  }

  @Test
  void discoverSaysWhichReferrersVerify() throws Exception {
    String subject = env.vars.get("SATCHEL_SIGNED_SUBJECT");
    String sbom = env.vars.get("SATCHEL_SIGNED_SBOM").split("@", 2)[1];
    var found = client.discover(subject, withKey("SATCHEL_SIGNING_KEY"));
    var signed =
        found.getReferrersList().stream()
            .filter(r -> r.getManifest().getDigest().equals(sbom))
            .findFirst()
            .orElseThrow();
    assertTrue(signed.getVerification().getVerified(), signed.toString());
  }
}
