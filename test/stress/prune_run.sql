-- Prunes the old jobs and the rows of workflows left with none (test/scripts/prune_stress.sh).
SELECT oban_prune_jobs(interval '1 hour');
