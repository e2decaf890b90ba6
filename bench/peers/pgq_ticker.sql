-- PgQ's ticker (what pgqd does): run at a fixed rate with pgbench -R.
SELECT pgq.ticker();
