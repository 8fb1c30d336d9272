package dev.satchel.client.examples;

// The README's "Usage" example: everything from "README begin" to "README end" is the README's
// block, character for character (ReadmeExamplesTest checks it, then runs main on a live daemon).
// README begin
import dev.satchel.client.Options;
import dev.satchel.client.PullResult;
import dev.satchel.client.SatchelClient;
import dev.satchel.v1.PushResult;
import dev.satchel.v1.Referrer;
import java.nio.file.Path;
import java.util.List;

/** Pushes a file, attaches an SBOM to it, lists its referrers, pulls it back and resolves the tag. */
public final class QuickStart {
  // java QuickStart ADDRESS REPOSITORY FILE SBOM OUTPUT_DIR, for example
  //   java QuickStart "" localhost:5000/demo/app app.tar sbom.json out
  // An empty ADDRESS means $SATCHEL_ADDR, else the daemon's default socket.
  public static void main(String[] args) throws Exception {
    String tag = args[1] + ":v1";
    // plainHttp: this registry speaks HTTP, not HTTPS.
    Options opts = Options.builder().plainHttp(true).build();
    try (SatchelClient satchel = SatchelClient.connect(args[0])) {
      PushResult app = satchel.push(tag, List.of(Path.of(args[2])), opts);
      System.out.println("pushed " + app.getReference());

      satchel.attach(tag, List.of(Path.of(args[3])),
          Options.builder().plainHttp(true).artifactType("application/vnd.example.sbom.v1")
              .annotation("org.example.kind", "sbom").build());
      for (Referrer r : satchel.discover(tag, opts).getReferrersList()) {
        System.out.println("referrer " + r.getManifest().getDigest()
            + " " + r.getManifest().getArtifactType());
      }

      PullResult pulled = satchel.pull(app.getReference(),
          Options.builder().plainHttp(true).outputDir(Path.of(args[4])).build());
      System.out.println("pulled " + pulled.files());
      System.out.println(tag + " is " + satchel.resolve(tag, opts).getManifest().getDigest());
    }
  }
}
// README end
