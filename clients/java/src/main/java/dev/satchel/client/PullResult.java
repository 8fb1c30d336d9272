package dev.satchel.client;

import dev.satchel.v1.PulledManifest;
import java.nio.file.Path;
import java.util.List;

/**
 * What {@link SatchelClient#pull} fetched: the manifest (descriptor, content and canonical
 * reference) and the files written, in the order the daemon sent them.
 */
public record PullResult(PulledManifest manifest, List<Path> files) {
  public PullResult {
    files = List.copyOf(files);
  }
}
