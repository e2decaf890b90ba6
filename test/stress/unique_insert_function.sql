-- A unique three-step workflow "nightly" through oban_insert_workflow (conflicts come back flagged).
SELECT count(*) FILTER (WHERE conflicted) FROM oban_insert_workflow('{"name": "nightly", "unique": true, "jobs": [
    {"name": "a", "worker": "W", "queue": "stress"},
    {"name": "b", "worker": "W", "queue": "stress", "deps": ["a"]},
    {"name": "c", "worker": "W", "queue": "stress", "deps": ["b"]}]}');
