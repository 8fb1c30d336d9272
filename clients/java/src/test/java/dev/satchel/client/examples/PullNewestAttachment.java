package dev.satchel.client.examples;

// The README's one-step pull example: everything from "README begin" to "README end" is the
// README's block, character for character (ReadmeExamplesTest checks it, then runs main on a live
// daemon).
// README begin
import dev.satchel.client.Options;
import dev.satchel.client.PullResult;
import dev.satchel.client.SatchelClient;
import java.nio.file.Path;

/** Pulls the newest SBOM attached to an artifact, in one call. */
public final class PullNewestAttachment {
  // java PullNewestAttachment ADDRESS SUBJECT OUTPUT_DIR, for example
  //   java PullNewestAttachment "" localhost:5000/demo/app:v1 sbom-out
  public static void main(String[] args) throws Exception {
    Options opts = Options.builder()
        .plainHttp(true)
        .artifactType("application/vnd.example.sbom.v1")
        .outputDir(Path.of(args[2]))
        .build();
    try (SatchelClient satchel = SatchelClient.connect(args[0])) {
      PullResult sbom = satchel.pullAttachment(args[1], opts);
      System.out.println("pulled " + sbom.manifest().getReference() + ": " + sbom.files());
    }
  }
}
// README end
