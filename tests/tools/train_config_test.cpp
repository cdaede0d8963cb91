// tools: `tessel train` settings from JSON and overrides; unknown keys and wrong types rejected.
#include <doctest/doctest.h>

#ifdef TESSEL_CLI_PATH
#include "core/error.h"
#include "tools/train_config.h"

using doctest::Contains;
using tessel::Error;
using tessel::cli::TrainConfig;

TEST_SUITE("tools") {
  TEST_CASE("train config: JSON, overrides, errors") {
    TrainConfig c;
    c.apply_json(R"({"model": "gpt", "lr": 0.01, "depth": 6, "rotary": true})", "cfg.json");
    CHECK(c.model == "gpt");
    CHECK(c.lr == 0.01);
    CHECK(c.depth == 6);
    CHECK(c.rotary);
    c.apply_override("batch=64");
    c.apply_override("out=runs/7");  // a string value without quotes
    c.apply_override("data=123");    // a string setting keeps a numeric-looking value as text
    CHECK(c.batch == 64);
    CHECK(c.out == "runs/7");
    CHECK(c.data == "123");
    CHECK_THROWS_WITH_AS(c.apply_json(R"({"lr": 0.1, "learning_rate": 3})", "cfg.json"),
                         Contains("cfg.json: unknown key 'learning_rate'; valid keys: model, data"), Error);
    CHECK_THROWS_WITH_AS(c.apply_json(R"({"depth": 2.5})", "cfg.json"), Contains("'depth' expects an integer, got 2.5"),
                         Error);
    CHECK_THROWS_WITH_AS(c.apply_json(R"({"lr": "fast"})", "x"), Contains("'lr' expects a number"), Error);
    CHECK_THROWS_WITH_AS(c.apply_json("{not json", "broken.json"), Contains("broken.json: not valid JSON"), Error);
    CHECK_THROWS_WITH_AS(c.apply_json("[1, 2]", "a.json"), Contains("expected a JSON object"), Error);
    CHECK_THROWS_WITH_AS(c.apply_override("lr"), Contains("--set expects key=value"), Error);
    TrainConfig round;
    round.apply_json(c.to_json(), "round trip");
    CHECK(round.to_json() == c.to_json());
  }
}
#endif
