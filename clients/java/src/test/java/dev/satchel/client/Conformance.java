package dev.satchel.client;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The shared files of clients/conformance (pull_streams.json, limits.json, behaviour.json): the pom
 * passes the directory as satchel.conformanceDir; by default it is ../conformance from clients/java.
 */
final class Conformance {
  private Conformance() {}

  static Path dir() {
    return Path.of(System.getProperty("satchel.conformanceDir", "../conformance"));
  }

  static JsonObject load(String name) {
    try {
      return JsonParser.parseString(Files.readString(dir().resolve(name))).getAsJsonObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** limits.json's server_info_defaults.{key}. */
  static long serverInfoDefault(String key) {
    return load("limits.json").getAsJsonObject("server_info_defaults").get(key).getAsLong();
  }

  /** limits.json's client_receive_limit_bytes. */
  static long clientReceiveLimit() {
    return load("limits.json").get("client_receive_limit_bytes").getAsLong();
  }
}
