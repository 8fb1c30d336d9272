package dev.satchel.client;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The rules for file names (layer titles, {@code org.opencontainers.image.title}) that every Satchel
 * client and the daemon apply before a pulled byte is written; {@code
 * clients/conformance/titles.json} holds the shared test vectors. A refused title is a {@link
 * StatusRuntimeException} with {@code INVALID_ARGUMENT}.
 */
public final class Titles {
  /** The longest path component a title may have, in bytes of UTF-8. */
  public static final int COMPONENT_MAX_BYTES = 255;

  /** The longest title, in bytes of UTF-8. */
  public static final int TOTAL_MAX_BYTES = 4096;

  static final String TITLE_ANNOTATION = "org.opencontainers.image.title";

  private Titles() {}

  /**
   * Refuses a title that is not a plain relative path: empty, absolute, with an empty, "." or ".."
   * component, a backslash, a control character (C0 or DEL), a component over {@link
   * #COMPONENT_MAX_BYTES} bytes or more than {@link #TOTAL_MAX_BYTES} bytes in all.
   *
   * @throws StatusRuntimeException INVALID_ARGUMENT, saying why
   */
  public static void check(String title) {
    if (title.isEmpty()) {
      throw refused(title, "empty");
    }
    if (utf8Length(title) > TOTAL_MAX_BYTES) {
      throw refused(title, "longer than " + TOTAL_MAX_BYTES + " bytes");
    }
    if (title.startsWith("/")) {
      throw refused(title, "absolute");
    }
    if (title.indexOf('\\') >= 0) {
      throw refused(title, "contains a backslash");
    }
    for (int i = 0; i < title.length(); i++) {
      char c = title.charAt(i);
      if (c < 0x20 || c == 0x7f) {
        throw refused(title, "contains a control character");
      }
    }
    for (String part : title.split("/", -1)) {
      if (part.isEmpty() || part.equals(".") || part.equals("..")) {
        throw refused(title, "an empty, \".\" or \"..\" component");
      }
      if (utf8Length(part) > COMPONENT_MAX_BYTES) {
        throw refused(title, "a component longer than " + COMPONENT_MAX_BYTES + " bytes");
      }
    }
  }

  /**
   * Checks the titles of one artifact, each with {@link #check} and against each other: no two
   * layers may write one file, and no title may be a directory of another ("x" and "x/y").
   *
   * @throws StatusRuntimeException INVALID_ARGUMENT, saying why
   */
  public static void checkAll(Collection<String> titles) {
    Set<String> seen = new HashSet<>();
    for (String title : titles) {
      check(title);
      if (!seen.add(title)) {
        throw refused(title, "two layers are both named so");
      }
    }
    for (String title : titles) {
      for (int i = title.indexOf('/'); i >= 0; i = title.indexOf('/', i + 1)) {
        String dir = title.substring(0, i);
        if (seen.contains(dir)) {
          throw Status.INVALID_ARGUMENT
              .withDescription(
                  "refusing file names "
                      + shown(dir)
                      + " and "
                      + shown(title)
                      + ": the first would be a file and a directory")
              .asRuntimeException();
        }
      }
    }
  }

  /**
   * The titles of a manifest's layers, in order; layers without a title are not pulled.
   *
   * @throws StatusRuntimeException INVALID_ARGUMENT when the content is not a JSON image manifest
   */
  static List<String> ofManifest(ByteString content) {
    List<String> titles = new ArrayList<>();
    try {
      JsonElement root = JsonParser.parseString(content.toString(StandardCharsets.UTF_8));
      JsonElement layers = root.isJsonObject() ? root.getAsJsonObject().get("layers") : null;
      if (layers == null || layers.isJsonNull()) {
        if (!root.isJsonObject()) {
          throw new JsonParseException("not an object");
        }
        return titles;
      }
      for (JsonElement layer : layers.getAsJsonArray()) {
        JsonElement annotations = layer.getAsJsonObject().get("annotations");
        if (annotations == null || annotations.isJsonNull()) {
          continue;
        }
        JsonObject map = annotations.getAsJsonObject();
        if (map.has(TITLE_ANNOTATION)) {
          titles.add(map.get(TITLE_ANNOTATION).getAsString());
        }
      }
      return titles;
    } catch (JsonParseException | IllegalStateException | UnsupportedOperationException e) {
      throw Status.INVALID_ARGUMENT
          .withDescription("pull: the manifest is not a JSON image manifest: " + e.getMessage())
          .asRuntimeException();
    }
  }

  /** A title as messages quote it: control characters escaped, cut to 64 characters. */
  static String shown(String title) {
    StringBuilder out = new StringBuilder("\"");
    int n = Math.min(title.length(), 64);
    for (int i = 0; i < n; i++) {
      char c = title.charAt(i);
      if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    out.append('"');
    if (n < title.length()) {
      out.append("… (").append(utf8Length(title)).append(" bytes)");
    }
    return out.toString();
  }

  private static StatusRuntimeException refused(String title, String why) {
    return Status.INVALID_ARGUMENT
        .withDescription("refusing file name " + shown(title) + ": " + why)
        .asRuntimeException();
  }

  private static int utf8Length(String s) {
    return s.getBytes(StandardCharsets.UTF_8).length;
  }
}
