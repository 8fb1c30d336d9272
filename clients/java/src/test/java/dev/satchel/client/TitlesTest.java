package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.google.gson.JsonObject;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.function.Executable;

/** Titles against every vector of clients/conformance/titles.json, one dynamic test each. */
class TitlesTest {
  @Test
  void limitsMatchTheVectors() {
    JsonObject limits = Vectors.load().getAsJsonObject("limits");
    assertEquals(limits.get("component_max_bytes").getAsInt(), Titles.COMPONENT_MAX_BYTES);
    assertEquals(limits.get("total_max_bytes").getAsInt(), Titles.TOTAL_MAX_BYTES);
  }

  @TestFactory
  Stream<DynamicTest> checkAcceptsEveryAcceptVector() {
    return each("accept", v -> Vectors.title(v), v -> () -> {
      assertDoesNotThrow(() -> Titles.check(Vectors.title(v)));
      assertDoesNotThrow(() -> Titles.checkAll(List.of(Vectors.title(v))));
    });
  }

  @TestFactory
  Stream<DynamicTest> checkRefusesEveryRefuseVectorAsInvalidArgument() {
    return each("refuse", v -> Vectors.str(v, "why"), v -> () -> {
      String title = Vectors.title(v);
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> Titles.check(title));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().length() < 300, e.getStatus().getDescription());
      e = assertThrows(
          StatusRuntimeException.class, () -> Titles.checkAll(List.of("ok.txt", title)));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    });
  }

  @TestFactory
  Stream<DynamicTest> checkAllRefusesEveryConflictVector() {
    return each("conflicts", v -> Vectors.str(v, "why"), v -> () -> {
      List<String> titles = Vectors.titles(v);
      titles.forEach(Titles::check);
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> Titles.checkAll(titles));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    });
  }

  @TestFactory
  Stream<DynamicTest> checkAllAcceptsEveryCompatibleVector() {
    return each(
        "compatible",
        v -> Vectors.str(v, "why"),
        v -> () -> assertDoesNotThrow(() -> Titles.checkAll(Vectors.titles(v))));
  }

  interface Named {
    String of(JsonObject v);
  }

  interface Body {
    Executable of(JsonObject v);
  }

  private static Stream<DynamicTest> each(String key, Named name, Body body) {
    List<DynamicTest> tests = new ArrayList<>();
    List<JsonObject> vectors = Vectors.list(key);
    for (int i = 0; i < vectors.size(); i++) {
      JsonObject v = vectors.get(i);
      tests.add(dynamicTest(Vectors.name(i, name.of(v)), body.of(v)));
    }
    return tests.stream();
  }
}
