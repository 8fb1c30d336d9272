package dev.satchel.client;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * clients/conformance/titles.json, the title vectors every client and the daemon share: the pom
 * passes its path as satchel.conformance; by default it is ../conformance/titles.json from
 * clients/java.
 */
final class Vectors {
  private Vectors() {}

  static JsonObject load() {
    Path path = Path.of(System.getProperty("satchel.conformance", "../conformance/titles.json"));
    try {
      return JsonParser.parseString(Files.readString(path)).getAsJsonObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static List<JsonObject> list(String key) {
    List<JsonObject> out = new ArrayList<>();
    for (JsonElement e : load().getAsJsonArray(key)) {
      out.add(e.getAsJsonObject());
    }
    if (out.isEmpty()) {
      throw new IllegalStateException("titles.json has no " + key);
    }
    return out;
  }

  static String str(JsonObject v, String key) {
    JsonElement e = v.get(key);
    return e == null || e.isJsonNull() ? "" : e.getAsString();
  }

  /** prefix + title repeated repeat times (default 1) + suffix. */
  static String title(JsonObject v) {
    int repeat = v.has("repeat") ? v.get("repeat").getAsInt() : 1;
    return str(v, "prefix") + str(v, "title").repeat(repeat) + str(v, "suffix");
  }

  static List<String> titles(JsonObject v) {
    return strings(v.getAsJsonArray("titles"));
  }

  static List<String> strings(JsonArray a) {
    List<String> out = new ArrayList<>();
    if (a != null) {
      a.forEach(e -> out.add(e.getAsString()));
    }
    return out;
  }

  /** A test's display name: index and what the vector is about, escaped and short. */
  static String name(int i, String what) {
    String shown = Titles.shown(what);
    return String.format("%02d %s", i, shown.length() > 50 ? shown.substring(0, 50) + "…" : shown);
  }
}
