\set q random(0, :nq)
SELECT clock_timestamp() AS t \gset
SELECT pgq.insert_event('bench_' || :q, 'job', json_build_object('t', :t::text)::text);
