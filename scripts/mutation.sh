#!/usr/bin/env bash
# Mutation testing with mutmut 3 (from the dev extra) on one module, or on the core modules that
# guard data and secrets. Not part of CI: it takes tens of minutes per module on a loaded machine.
#
# Usage: scripts/mutation.sh [--fresh] [MODULE ...]
#   MODULE  a source path such as pipeline/triggers.py or src/taskdaemon/pipeline/triggers.py;
#           none means the core modules listed in core_modules below.
#   --fresh forget earlier results of these modules and test every mutant again. Without it,
#           mutmut only tests the mutants of functions changed since the last run, unless its
#           tests or pytest arguments differ from the last run's (it then forgets every
#           verdict): after adding tests to a listed file, re-test survivors by name
#           (MUTATION_NAMES), or use --fresh (as for the scores recorded in docs/mutation.md).
# Environment:
#   MUTATION_TESTS     space-separated test files to run instead of the module's own selection
#   MUTATION_CHILDREN  parallel mutmut workers (default 1: the machine is shared)
#   MUTATION_TIMEOUT_MULTIPLIER  mutmut's timeout_multiplier (its default 15): a mutant is
#                      stopped after (its tests' time + 1 s) times this, in wall time; a mutant
#                      that makes an async test wait idles, so only that limit ends it
#   MUTATION_NAMES     space-separated mutant names or globs (mutmut matches them with fnmatch,
#                      e.g. '*SqliteSpanProcessor*_serve__mutmut_*'): test only those, as the
#                      rest of a run stopped before its end; the score counts only the mutants
#                      tested, and only their timeouts are run again
#   MUTATION_RECHECK_SECONDS  the least wall time a timed-out mutant's re-run is given (120):
#                      mutmut's timeouts are each run again alone (scripts/mutation_recheck.py)
#
# Each module gets its own scratch copy of the repository in .mutation/<module>/, with a
# [tool.mutmut] table appended to the copy's pyproject.toml, so the runs never touch the work
# tree and each keeps its own results (see them with `cd .mutation/<module> && mutmut show NAME`).
# PYTHONPATH points at mutmut's mutated tree (mutants/src), so tests that start a Python
# subprocess run the mutant too; without it such a test imports the unmutated installed copy
# and a mutant looks killed when only the parent process changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mutmut="$root/.venv/bin/mutmut"
[[ -x $mutmut ]] || { echo "mutation.sh: $mutmut missing: run scripts/setup.sh --dev" >&2; exit 2; }

core_modules=(
    pipeline/triggers.py
    pipeline/visualization/_dot.py
    pipeline/tracking/reconstruct.py
    pipeline/tracking/_run_events.py
    pipeline/tracking/_attribute_values.py
    pipeline/payloads.py
    pipeline/redaction.py
    pipeline/secret_keys.py
    pipeline/secret_shapes.py
)

# The tests that exercise each module, fast ones first. mutmut runs, for each mutant, only the
# tests of this selection that called the mutated function.
tests_for() {
    case "$1" in
        pipeline/triggers.py)
            echo tests/pipeline_engine_trigger_functions_test.py \
                tests/pipeline_engine_triggers_test.py tests/pipeline_model_test.py \
                tests/pipeline_engine_test.py tests/pipeline_engine_observers_test.py \
                tests/pipeline_config_test.py tests/pipeline_config_invalid_test.py \
                tests/pipeline_config_robustness_test.py ;;
        pipeline/visualization/_dot.py)
            echo tests/pipeline_visualization_test.py tests/pipeline_visualization_dot_graphviz_test.py \
                tests/pipeline_visualization_cli_test.py ;;
        pipeline/tracking/reconstruct.py | pipeline/tracking/_run_events.py \
            | pipeline/tracking/_attribute_values.py)
            echo tests/pipeline_tracking_reconstruct_test.py tests/pipeline_tracking_sources_test.py \
                tests/pipeline_tracking_reconstruct_statuses_test.py \
                tests/pipeline_tracking_reconstruct_sources_test.py ;;
        pipeline/replay/verify.py)
            echo tests/pipeline_replay_verify_test.py ;;
        pipeline/http_security.py)
            echo tests/pipeline_http_security_test.py tests/pipeline_http_security_middleware_test.py ;;
        pipeline/run_state.py | pipeline/run_state_books.py)
            echo tests/pipeline_run_state_vocabulary_test.py tests/pipeline_run_state_reducer_test.py \
                tests/pipeline_run_state_reducer_pauses_test.py \
                tests/pipeline_run_state_test.py tests/pipeline_visualization_live_test.py \
                tests/pipeline_tracking_reconstruct_test.py \
                tests/pipeline_tracking_reconstruct_statuses_test.py \
                tests/pipeline_tracking_live_vs_stored_test.py ;;
        pipeline/validation.py)
            # Its own test and the model's first, then the loader's, which read each issue's
            # path and message through a pipeline file (the default selection has neither).
            echo tests/pipeline_validation_test.py tests/pipeline_model_test.py \
                tests/pipeline_config_invalid_test.py tests/pipeline_config_test.py \
                tests/pipeline_config_quick_test.py tests/reliability_hostile_input_test.py ;;
        pipeline/cel_limits.py)
            echo tests/pipeline_cel_limits_test.py tests/reliability_hostile_input_test.py \
                tests/pipeline_engine_trigger_functions_test.py tests/pipeline_validation_test.py ;;
        pipeline/span_redaction.py)
            echo tests/pipeline_span_redaction_test.py \
                tests/pipeline_monitor_definition_redaction_test.py \
                tests/pipeline_monitor_redaction_once_test.py tests/pipeline_monitor_payloads_test.py ;;
        pipeline/yaml_values.py)
            echo tests/pipeline_yaml_values_test.py tests/pipeline_yaml_quick_test.py \
                tests/pipeline_config_quick_test.py tests/pipeline_yamlsafe_test.py \
                tests/pipeline_config_test.py tests/pipeline_config_invalid_test.py \
                tests/pipeline_config_robustness_test.py ;;
        pipeline/http_limits.py)
            echo tests/pipeline_http_limits_test.py tests/pipeline_http_limits_protocol_test.py \
                tests/pipeline_metrics_http_limits_cache_test.py tests/pipeline_http_security_test.py \
                tests/reliability_http_test.py ;;
        pipeline/yamlsafe.py)
            echo tests/pipeline_yamlsafe_test.py tests/pipeline_yaml_quick_test.py \
                tests/pipeline_config_quick_test.py tests/reliability_hostile_input_test.py \
                tests/pipeline_config_test.py tests/pipeline_config_invalid_test.py \
                tests/pipeline_config_robustness_test.py ;;
        pipeline/yaml_graph.py)
            # Its own tests, then the quick reader's and the loader's, which reach it through
            # pipeline files with aliases and merge keys, and the lines of their issues.
            echo tests/pipeline_yaml_graph_test.py tests/pipeline_yaml_quick_test.py \
                tests/pipeline_config_quick_test.py tests/pipeline_yaml_lines_test.py ;;
        pipeline/config_reader.py | pipeline/config_issues.py | pipeline/config_hints.py)
            # A newcomer's slips and their hints in each syntax, the paths an issue covers, each
            # field's issue and default through pipeline texts, then the loader's files, the
            # quick reader's, the numbers' and the hostile files' (size and count limits). Not
            # the newcomer's and the hint syntax's files: `taskdaemon validate` processes,
            # credited nothing.
            echo tests/pipeline_config_hints_test.py tests/pipeline_config_issues_test.py \
                tests/pipeline_config_reader_test.py tests/pipeline_config_invalid_test.py \
                tests/pipeline_config_test.py \
                tests/pipeline_config_quick_test.py tests/pipeline_finite_number_test.py \
                tests/pipeline_config_robustness_test.py tests/reliability_hostile_input_test.py ;;
        pipeline/yaml_quick.py)
            echo tests/pipeline_yaml_quick_test.py tests/pipeline_config_quick_test.py ;;
        pipeline/durations.py)
            echo tests/pipeline_durations_test.py tests/pipeline_visualization_test.py \
                tests/pipeline_tracking_report_test.py ;;
        pipeline/terminal_text.py)
            echo tests/pipeline_terminal_text_test.py tests/pipeline_cli_runs_test.py ;;
        pipeline/config_text.py)
            echo tests/pipeline_config_text_test.py tests/reliability_hostile_input_test.py \
                tests/pipeline_config_test.py tests/pipeline_config_invalid_test.py \
                tests/pipeline_config_robustness_test.py ;;
        pipeline/tracking/_remote.py)
            # The remote sources' own tests, and the two other readers of its settings and URLs.
            echo tests/reliability_sources_test.py tests/reliability_sources_deadlines_test.py \
                tests/pipeline_tracking_source_urls_test.py \
                tests/pipeline_settings_size_bounds_test.py ;;
        pipeline/control.py | pipeline/control_sockets.py)
            echo tests/pipeline_control_test.py tests/pipeline_control_protocol_test.py \
                tests/pipeline_cli_approve_served_test.py tests/pipeline_control_stale_test.py ;;
        pipeline/connection_slots.py)
            # Its own test, then the two servers' eviction tests, in-process.
            echo tests/pipeline_connection_slots_test.py tests/pipeline_http_limits_protocol_test.py \
                tests/pipeline_control_limits_test.py ;;
        pipeline/cel_worker.py)
            echo tests/pipeline_cel_worker_test.py tests/reliability_hostile_input_test.py \
                tests/pipeline_engine_isolated_cel_test.py tests/pipeline_engine_triggers_test.py ;;
        pipeline/expressions.py)
            # The messages in-process first (the file's CLI cases run in subprocesses, which
            # mutmut credits nothing), then the paths read, the worker's and the engine's
            # evaluations. Not the start-up test (what `run` imports), nor the hostile input's
            # (its CEL cases are in cel_limits.py's and cel_worker.py's selections).
            echo tests/pipeline_expressions_test.py tests/pipeline_cel_paths_test.py \
                tests/pipeline_engine_isolated_cel_test.py \
                tests/pipeline_engine_trigger_functions_test.py \
                tests/pipeline_engine_triggers_test.py tests/pipeline_engine_dataflow_test.py \
                tests/pipeline_value_methods_test.py ;;
        pipeline/stored_json.py)
            echo tests/pipeline_stored_json_test.py tests/pipeline_tracking_store_test.py \
                tests/pipeline_tracking_migrations_test.py tests/pipeline_tracking_retention_test.py ;;
        pipeline/private_file.py)
            echo tests/pipeline_private_file_test.py tests/pipeline_cli_output_file_test.py \
                tests/pipeline_debug_dump_test.py ;;
        pipeline/payloads.py)
            echo tests/pipeline_redaction_rules_test.py tests/pipeline_redaction_test.py \
                tests/pipeline_monitor_payloads_test.py tests/pipeline_monitor_test.py \
                tests/pipeline_monitor_outcomes_test.py ;;
        pipeline/redaction.py | pipeline/secret_keys.py | pipeline/secret_shapes.py)
            echo tests/pipeline_redaction_memory_test.py tests/pipeline_redaction_unchanged_test.py \
                tests/pipeline_redaction_rules_test.py tests/pipeline_redaction_test.py \
                tests/pipeline_redaction_precheck_test.py tests/pipeline_redaction_memo_walk_test.py \
                tests/pipeline_redaction_str_subclass_test.py \
                tests/pipeline_monitor_definition_redaction_test.py \
                tests/pipeline_monitor_payloads_test.py tests/pipeline_monitor_test.py \
                tests/pipeline_monitor_outcomes_test.py ;;
        pipeline/masked_values.py)
            echo tests/pipeline_masked_values_test.py tests/pipeline_masked_values_wrapped_test.py \
                tests/pipeline_secret_values_test.py tests/pipeline_redaction_test.py \
                tests/pipeline_redaction_rules_test.py tests/pipeline_secret_values_overlap_test.py ;;
        pipeline/settings.py | pipeline/settings_parsers.py)
            echo tests/pipeline_settings_test.py tests/pipeline_settings_parsers_test.py \
                tests/pipeline_settings_grafana_credentials_test.py \
                tests/pipeline_monitor_settings_test.py tests/pipeline_monitor_cli_telemetry_test.py \
                tests/pipeline_redaction_test.py tests/pipeline_http_security_test.py ;;
        pipeline/run_log.py)
            echo tests/pipeline_run_log_records_test.py tests/pipeline_run_log_rows_test.py \
                tests/pipeline_run_log_stored_rows_test.py tests/pipeline_debug_logs_test.py \
                tests/pipeline_debug_logs_cli_test.py \
                tests/pipeline_monitor_unrecorded_test.py tests/pipeline_cli_deferred_test.py ;;
        pipeline/run_log_emit.py | pipeline/run_log_lean.py)
            # The run log's records and rows, then the record queue's turns that batch the rows.
            echo tests/pipeline_run_log_records_test.py tests/pipeline_run_log_rows_test.py \
                tests/pipeline_run_log_stored_rows_test.py tests/pipeline_monitor_record_queue_test.py \
                tests/pipeline_debug_logs_test.py tests/pipeline_monitor_unrecorded_test.py \
                tests/pipeline_cli_deferred_test.py ;;
        pipeline/log_export.py)
            echo tests/pipeline_log_export_test.py tests/pipeline_debug_logs_test.py \
                tests/pipeline_debug_logs_cli_test.py ;;
        pipeline/process_tree.py)
            echo tests/pipeline_process_tree_test.py tests/pipeline_loops_test.py \
                tests/pipeline_metrics_test.py ;;
        pipeline/tracking/source_urls.py)
            echo tests/pipeline_tracking_source_urls_test.py tests/pipeline_tracking_sources_test.py ;;
        pipeline/cli/bounded_session.py)
            echo tests/pipeline_cli_bounded_session_test.py ;;
        pipeline/tracking/_deadline_io.py)
            echo tests/pipeline_tracking_deadline_io_test.py tests/reliability_sources_test.py \
                tests/reliability_sources_deadlines_test.py tests/pipeline_tracking_sources_test.py ;;
        pipeline/group_watchdog.py)
            echo tests/pipeline_group_watchdog_test.py ;;
        pipeline/yaml_lines.py)
            echo tests/pipeline_yaml_lines_test.py tests/pipeline_yaml_places_test.py ;;
        pipeline/yaml_places.py)
            echo tests/pipeline_yaml_places_test.py ;;
        pipeline/toml_lines.py)
            echo tests/pipeline_toml_lines_test.py tests/pipeline_toml_values_test.py \
                tests/pipeline_hint_syntax_test.py tests/pipeline_cli_validate_lines_test.py ;;
        pipeline/toml_values.py)
            echo tests/pipeline_toml_values_test.py tests/pipeline_toml_lines_test.py ;;
        pipeline/toml_scan.py)
            echo tests/pipeline_ignore_comments_toml_test.py tests/pipeline_toml_lines_test.py \
                tests/pipeline_ignore_comments_test.py ;;
        pipeline/hint_syntax.py)
            echo tests/pipeline_hint_syntax_test.py tests/pipeline_config_invalid_test.py ;;
        pipeline/_watchdog_process.py)
            # In-process tests only: the program runs as `python -I -S` of its (mutated) file,
            # which cannot import mutmut's trampoline, so the watchdog tests fail every mutant.
            # Its loop (`_watch`) too runs in the tests' process, its stdin a pipe.
            echo tests/pipeline_watchdog_process_test.py \
                tests/pipeline_watchdog_process_token_test.py ;;
        pipeline/cel_syntax.py | pipeline/cel_functions.py)
            # Reached through `expressions.compile_expression`: no test imports them by name.
            echo tests/pipeline_cel_syntax_test.py tests/pipeline_config_invalid_test.py ;;
        pipeline/adopted_orphans.py)
            # The in-process file first (the tests' own children stand for adopted ones); the
            # other runs `taskdaemon run` subprocesses, credited nothing.
            echo tests/pipeline_adopted_orphans_look_test.py \
                tests/pipeline_adopted_orphans_test.py ;;
        pipeline/tracking/otlp_json.py)
            echo tests/pipeline_tracking_otlp_json_test.py \
                tests/pipeline_tracking_otlp_json_encoding_test.py \
                tests/pipeline_tracking_sources_test.py ;;
        pipeline/engine/_debug.py | pipeline/engine/_debug_pauses.py | \
            pipeline/engine/_debug_match.py | pipeline/engine/_debug_views.py)
            echo tests/pipeline_engine_debug_session_test.py \
                tests/pipeline_engine_debug_commands_test.py \
                tests/pipeline_engine_debug_inspect_test.py tests/pipeline_debug_engine_test.py \
                tests/pipeline_debug_monitor_test.py tests/pipeline_debug_server_test.py \
                tests/pipeline_run_state_test.py tests/pipeline_replay_step_test.py ;;
        pipeline/debug_ops.py)
            # The prompt's own test runs the debugger in a subprocess (not credited); the HTTP
            # routes reach DebugOps in-process.
            echo tests/pipeline_debug_ops_test.py tests/pipeline_debug_ops_prompts_test.py \
                tests/pipeline_debug_ops_runs_test.py tests/pipeline_debug_server_test.py ;;
        pipeline/engine/_triggering.py)
            echo tests/pipeline_engine_triggering_test.py tests/pipeline_engine_debug_inspect_test.py \
                tests/pipeline_engine_triggers_test.py tests/pipeline_engine_trigger_functions_test.py \
                tests/pipeline_monitor_trigger_events_test.py tests/pipeline_engine_test.py \
                tests/pipeline_engine_isolated_cel_test.py tests/pipeline_engine_observers_test.py \
                tests/pipeline_engine_property_test.py ;;
        pipeline/secret_values.py)
            # Masking by value, then the declared and learnt pools (the bound on each, holders
            # released, values forgotten and said).
            echo tests/pipeline_secret_values_test.py tests/pipeline_secret_values_declared_test.py \
                tests/pipeline_secret_values_pools_test.py tests/pipeline_secret_values_unmaskable_test.py ;;
        pipeline/web/_deltas.py)
            # The deltas made and applied back in-process. Not the stream's file, whose page
            # tests start chromium for each mutant (about 40 s each: 2 hours for the module).
            echo tests/pipeline_web_deltas_test.py ;;
        pipeline/unused_ignores.py)
            # The warnings read from the loader in-process first; the other file's cases run
            # `taskdaemon validate` processes (credited nothing) but for the warning cap's.
            echo tests/pipeline_unused_ignores_parsed_test.py tests/pipeline_unused_ignores_test.py ;;
        pipeline/tracking/_retention.py)
            # Retention's own tests, then the store's history, the writer's start and the
            # kept runs and logs a pass deletes (none imports the module by name).
            echo tests/pipeline_tracking_retention_test.py \
                tests/pipeline_tracking_store_history_test.py \
                tests/pipeline_tracking_writer_start_test.py \
                tests/pipeline_tracking_kept_runs_test.py tests/pipeline_debug_logs_test.py ;;
        pipeline/cli/_debug_prompt.py)
            # Its commands typed over a real run in-process, then the file whose other tests
            # run the prompt in subprocesses (not credited).
            echo tests/pipeline_cli_debug_prompt_commands_test.py \
                tests/pipeline_debug_cli_test.py ;;
        pipeline/approval_audit.py | pipeline/http_json.py)
            # The control socket's and the HTTP API's decisions, in-process (the CLI's approve
            # test runs in subprocesses: not credited).
            echo tests/pipeline_control_test.py tests/pipeline_http_answers_test.py \
                tests/pipeline_web_api_test.py tests/reliability_http_test.py ;;
        pipeline/engine/_attempt.py | pipeline/engine/_run.py)
            echo tests/pipeline_engine_attempt_test.py tests/pipeline_engine_run_lifecycle_test.py \
                tests/pipeline_engine_failures_test.py \
                tests/pipeline_engine_slots_test.py tests/pipeline_engine_cancel_reason_test.py \
                tests/pipeline_engine_swallowed_cancel_test.py tests/pipeline_engine_run_books_test.py \
                tests/pipeline_engine_callbacks_test.py tests/pipeline_engine_observers_test.py \
                tests/pipeline_engine_debug_session_test.py \
                tests/pipeline_engine_debug_commands_test.py \
                tests/pipeline_engine_debug_inspect_test.py tests/pipeline_engine_test.py ;;
        pipeline/tracking/writer.py | pipeline/tracking/_span_batches.py)
            echo tests/pipeline_tracking_writer_start_test.py \
                tests/pipeline_tracking_writer_tally_test.py \
                tests/pipeline_tracking_writer_health_test.py \
                tests/pipeline_tracking_writer_lock_test.py \
                tests/pipeline_tracking_writer_refresh_test.py \
                tests/pipeline_tracking_writer_rebuild_test.py \
                tests/pipeline_tracking_writer_wakeups_test.py tests/pipeline_tracking_store_test.py \
                tests/pipeline_tracking_migrations_test.py tests/pipeline_tracking_retention_test.py \
                tests/pipeline_tracking_aggregates_test.py tests/pipeline_tracking_kept_runs_test.py \
                tests/pipeline_tracking_live_store_test.py tests/pipeline_tracking_store_missing_test.py \
                tests/pipeline_tracking_fork_guard_test.py tests/reliability_store_test.py ;;
        pipeline/monitor/_worker.py)
            echo tests/pipeline_monitor_worker_test.py tests/pipeline_monitor_record_queue_test.py \
                tests/pipeline_monitor_test.py \
                tests/pipeline_monitor_outcomes_test.py \
                tests/pipeline_monitor_engine_test.py tests/pipeline_monitor_stage_end_test.py \
                tests/pipeline_monitor_stage_statics_test.py \
                tests/pipeline_monitor_sampler_books_test.py \
                tests/pipeline_monitor_trigger_events_test.py \
                tests/pipeline_monitor_payload_events_test.py \
                tests/pipeline_monitor_unrecorded_test.py tests/pipeline_monitor_batch_test.py \
                tests/pipeline_debug_monitor_test.py tests/pipeline_replay_run_test.py \
                tests/pipeline_replay_run_workspace_test.py tests/pipeline_reporting_replays_test.py ;;
        pipeline/monitor/_stage_spans.py | pipeline/monitor/_spans.py)
            echo tests/pipeline_monitor_stage_spans_test.py tests/pipeline_monitor_spans_test.py \
                tests/pipeline_monitor_stage_spans_ends_test.py tests/pipeline_monitor_stage_end_test.py \
                tests/pipeline_monitor_payload_events_test.py \
                tests/pipeline_monitor_redaction_once_test.py \
                tests/pipeline_monitor_stage_statics_test.py \
                tests/pipeline_monitor_trigger_events_test.py tests/pipeline_monitor_test.py \
                tests/pipeline_monitor_outcomes_test.py \
                tests/pipeline_monitor_engine_test.py \
                tests/pipeline_monitor_definition_redaction_test.py \
                tests/pipeline_monitor_payloads_test.py tests/pipeline_monitor_worker_test.py \
                tests/pipeline_monitor_batch_test.py tests/pipeline_monitor_unrecorded_test.py \
                tests/pipeline_debug_monitor_test.py tests/pipeline_replay_run_test.py \
                tests/pipeline_replay_run_workspace_test.py tests/pipeline_reporting_replays_test.py ;;
        pipeline/reporting/_stats.py)
            echo tests/pipeline_reporting_stats_test.py tests/pipeline_tracking_report_test.py \
                tests/pipeline_reporting_event_path_test.py tests/pipeline_reporting_render_test.py \
                tests/pipeline_reporting_unended_test.py tests/pipeline_tracking_kept_runs_test.py \
                tests/pipeline_tracking_day_rows_test.py \
                tests/pipeline_tracking_report_exact_test.py ;;
        pipeline/tracking/_kept_runs.py)
            # The kept attempts' own tests, then the writer's aggregates compared with a rebuild
            # (only the run start's test imports the module by name).
            echo tests/pipeline_tracking_kept_runs_test.py tests/pipeline_monitor_run_start_test.py \
                tests/pipeline_tracking_aggregates_test.py tests/pipeline_tracking_report_exact_test.py \
                tests/pipeline_monitor_batch_test.py tests/pipeline_reporting_event_path_test.py \
                tests/pipeline_tracking_writer_tally_test.py ;;
        pipeline/cli/otel_exporters.py)
            # Each exporter built in-process through the CLI's telemetry set-up (no test imports it).
            echo tests/pipeline_monitor_cli_telemetry_test.py \
                tests/pipeline_monitor_cli_observed_metric_exporter_test.py ;;
        pipeline/cli/span_losses.py)
            # Its own in-process tests first; the others reach it through the CLI's telemetry
            # set-up, the alerts test through subprocesses and a real Prometheus.
            echo tests/pipeline_cli_span_losses_test.py tests/pipeline_monitor_cli_telemetry_test.py \
                tests/pipeline_monitor_cli_observed_log_exporter_test.py \
                tests/pipeline_cli_span_losses_alerts_test.py ;;
        pipeline/tracking/_remask.py)
            # The store's rows masked again, in-process (the writer's thread), then whole runs.
            echo tests/pipeline_tracking_remask_rows_test.py tests/pipeline_tracking_remask_test.py \
                tests/pipeline_tracking_log_writer_batches_test.py ;;
        pipeline/tracking/log_writer.py)
            # The writer's own rows, failures, batches and reads first, then the rows it masks
            # again, the run logs and captured output it stores, and a dump of its rows.
            echo tests/pipeline_tracking_log_writer_rows_test.py \
                tests/pipeline_tracking_log_writer_failures_test.py \
                tests/pipeline_tracking_log_writer_batches_test.py \
                tests/pipeline_tracking_log_read_test.py tests/pipeline_debug_logs_test.py \
                tests/pipeline_debug_output_pipes_test.py tests/pipeline_tracking_remask_rows_test.py \
                tests/pipeline_tracking_remask_test.py tests/pipeline_debug_dump_write_test.py ;;
        pipeline/table_fit.py)
            echo tests/pipeline_table_fit_test.py tests/pipeline_cli_run_tables_test.py ;;
        pipeline/cli/dump.py)
            # The command in-process (a stored run, a served one). Not the dump tests that run
            # it in subprocesses: mutmut credits them nothing, and their stats pass under nice
            # and load only risks pytest's 120 s (docs/mutation.md, mut44).
            echo tests/pipeline_cli_dump_test.py ;;
        pipeline/cli/logs.py)
            # The command in-process over a stored run first, then the file whose other tests
            # run it in subprocesses (not credited).
            echo tests/pipeline_cli_logs_lines_test.py tests/pipeline_cli_logs_test.py ;;
        pipeline/cli/run_tables.py)
            # The tables in-process; not the replay and web files that import it too: their
            # server and browser take a minute a mutant, for lines the tables' tests compare.
            echo tests/pipeline_cli_run_tables_test.py ;;
        pipeline/api_views.py)
            # The pure views first; then the run API and the runs page over a real server.
            echo tests/pipeline_api_views_test.py tests/pipeline_http_answers_test.py \
                tests/pipeline_server_runs_page_test.py ;;
        pipeline/web/_app.py | pipeline/web/_pages.py)
            # The routes over a real server in-process: the API and the pages' HTML first,
            # then pages in chromium. Not the page's script's own files (the page's use, the
            # screen reader's): a minute of browser a mutant of the routes every test reaches.
            # Nor `pipeline_visualization_web_test.py`: under the stats pass its run of
            # another process read `interrupted` and stopped the run (docs/mutation.md, mutw47).
            echo tests/pipeline_web_app_test.py tests/pipeline_web_api_test.py \
                tests/pipeline_http_answers_test.py tests/pipeline_web_logs_test.py \
                tests/pipeline_web_source_down_test.py tests/pipeline_web_remote_quiet_test.py \
                tests/pipeline_web_debug_logs_test.py tests/pipeline_web_history_test.py \
                tests/pipeline_web_app_pages_test.py ;;
        pipeline/http_health.py)
            # The verdicts and the ticker in-process first, then /healthz and /readyz over the
            # app (no other test imports the module by name: the server re-exports it).
            echo tests/pipeline_http_health_test.py tests/pipeline_monitor_server_test.py \
                tests/pipeline_monitor_cli_observed_log_exporter_test.py ;;
        pipeline/run_id_form.py)
            echo tests/pipeline_run_id_form_test.py tests/pipeline_http_answers_test.py \
                tests/pipeline_tracking_sources_test.py ;;
        pipeline/replay/run.py)
            # Replays run in-process (a real engine, monitor and store each); not the CLI's
            # replay files, whose subprocesses mutmut credits nothing.
            echo tests/pipeline_replay_run_test.py tests/pipeline_replay_run_shapes_test.py \
                tests/pipeline_replay_run_workspace_test.py tests/pipeline_replay_run_reuse_test.py \
                tests/pipeline_reporting_replays_test.py ;;
        pipeline/replay/reuse.py)
            # The decisions and the plan's candidates in-process (only the decisions file
            # imports it); not the replay files, whose subprocesses mutmut credits nothing.
            echo tests/pipeline_replay_reuse_decisions_test.py \
                tests/pipeline_replay_plan_reuse_test.py ;;
        pipeline/tracking/_jaeger.py)
            # Jaeger's answers, as fixtures served by a local HTTP server (no test imports it).
            echo tests/pipeline_tracking_sources_jaeger_test.py ;;
        pipeline/tracking/http_sources.py)
            # Its own tests first (each error line, the search's filters), then the sources'
            # fixtures and Jaeger's answers, then hostile backends (none imports it by name).
            echo tests/pipeline_tracking_http_sources_test.py \
                tests/pipeline_tracking_sources_tempo_test.py \
                tests/pipeline_tracking_sources_jaeger_test.py \
                tests/pipeline_tracking_sources_test.py tests/reliability_sources_test.py \
                tests/reliability_sources_deadlines_test.py ;;
        pipeline/tracking/spans.py)
            # The readers that keep what ``bounded`` keeps, and the SDK's spans through a store;
            # not the reliability tests of a million events (slow, and a subprocess's part is
            # not credited).
            echo tests/pipeline_tracking_spans_test.py tests/pipeline_tracking_rows_test.py \
                tests/pipeline_tracking_rows_large_test.py tests/pipeline_tracking_otlp_json_test.py \
                tests/pipeline_monitor_run_start_test.py ;;
        pipeline/cli/deferred.py | pipeline/cli/deferred_start.py | pipeline/cli/pending_logs.py)
            # The stand-in in-process (events kept and handed over, run ids and TRACEPARENTs
            # drawn, records and output kept in their place, a load failed or abandoned, the
            # set-up and its undoing), then the payload bound, the batches and the log writer's
            # flush through it; not the stuck load's test, a subprocess (credited nothing).
            echo tests/pipeline_cli_deferred_handover_test.py tests/pipeline_cli_deferred_test.py \
                tests/pipeline_cli_deferred_live_test.py \
                tests/pipeline_cli_deferred_traceparent_test.py \
                tests/pipeline_monitor_held_payloads_test.py tests/pipeline_monitor_batch_test.py \
                tests/pipeline_tracking_log_writer_batches_test.py ;;
        pipeline/home.py)
            # The home's verdicts in-process, then the commands that refuse or use it (run in
            # subprocesses: credited nothing); not the page's file that imports the default
            # name only.
            echo tests/pipeline_home_test.py ;;
        pipeline/server_debug.py)
            # The debugger's routes over a real engine, in-process and over TCP (no test
            # imports the module by name: the server registers its routes).
            echo tests/pipeline_server_debug_answers_test.py tests/pipeline_debug_server_test.py ;;
        pipeline/token_shapes.py)
            # Its own test, then the redaction tests that reach its pre-check through
            # redact_text (no other test imports it by name).
            echo tests/pipeline_token_shapes_test.py tests/pipeline_redaction_precheck_test.py \
                tests/pipeline_redaction_test.py tests/pipeline_redaction_rules_test.py ;;
        pipeline/validation_warnings.py)
            # The loader's warnings in-process; not the file that reads them through
            # `validate` and `run` processes, which mutmut credits nothing.
            echo tests/pipeline_validation_warnings_loaded_test.py ;;
        pipeline/http_answers.py)
            # Every answer's shape over a real server (no test imports it by name).
            echo tests/pipeline_http_answers_test.py ;;
        *)  # a module without a listed selection: the test files that import it
            imported_by "taskdaemon.${1%.py}" ;;
    esac
}

# The test files whose import statements name the dotted module: `import M`, `from M import
# x`, or `from PACKAGE import NAME` (anywhere in the file, a function's imports too). Read by
# Python's parser, not matched as text: `import dump` was found in `import dump_log_records`,
# `from json import dumps` and any docstring saying it.
imported_by() {
    "$root/.venv/bin/python" - "${1//\//.}" tests/*_test.py <<'EOF'
import ast
import sys

module, files = sys.argv[1], sys.argv[2:]
package, _, name = module.rpartition(".")


def imports(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == module for alias in node.names)
    if isinstance(node, ast.ImportFrom) and not node.level:
        return node.module == module or (
            node.module == package and any(alias.name == name for alias in node.names)
        )
    return False


print(" ".join(path for path in files if any(map(imports, ast.walk(ast.parse(open(path).read()))))))
EOF
}

# Tests that read the source files as text (the mutated copies are many times larger) or
# measure CPU time over thousands of stages: under mutmut's trampolines, nice and a loaded
# machine they only hit their timeout, and they pin layout and cost, not behaviour.
# The resource gauge test wants a busy child above 5% CPU, which a niced child on a loaded
# machine does not reach. The last one follows a run in another process: under mutmut's stats
# pass, nice and load, its follower's last line was not the run's end (it fails there, not run
# normally), and mutmut credits nothing a subprocess does.
deselect=(
    tests/pipeline_engine_test.py::test_engine_modules_import_no_telemetry
    tests/pipeline_config_robustness_test.py::test_loading_is_linear_in_the_number_of_stages
    tests/pipeline_metrics_test.py::test_resource_gauges_follow_a_command_stage
    tests/pipeline_debug_logs_cli_test.py::test_logs_follow_a_run_in_another_process_and_run_shows_the_stderr_tail
)

fresh=0
modules=()
for arg in "$@"; do
    case "$arg" in
        --fresh) fresh=1 ;;
        -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) modules+=("$arg") ;;
    esac
done
((${#modules[@]})) || modules=("${core_modules[@]}")

status=0
for module in "${modules[@]}"; do
    module=${module#./}
    module=${module#src/}
    module=${module#taskdaemon/}
    source="src/taskdaemon/$module"
    if [[ ! -f $source || $source != *.py ]]; then
        echo "mutation.sh: no such module: $source" >&2
        status=2
        continue
    fi
    read -r -a tests <<<"${MUTATION_TESTS:-$(tests_for "$module")}"
    read -r -a names <<<"${MUTATION_NAMES:-}"
    existing=()
    for t in "${tests[@]}"; do [[ -f $t ]] && existing+=("$t"); done
    if ((${#existing[@]} == 0)); then
        echo "mutation.sh: no tests found for $module: set MUTATION_TESTS" >&2
        status=2
        continue
    fi

    work="$root/.mutation/${module//\//_}"
    work=${work%.py}
    ((fresh)) && rm -rf "$work"
    mkdir -p "$work"
    # A fresh copy of the tracked and new files (not .venv, .git, nor earlier results).
    rm -rf "$work/src" "$work/tests"
    git ls-files -z --cached --others --exclude-standard -- . ":(exclude).mutation" ":(exclude).venv" \
        | tar -c --null -T - -f - 2>/dev/null | tar -x -C "$work" -f -
    # mutmut mutates a source again when it is newer than its mutated copy (tar keeps the
    # mtimes) and keeps its verdicts otherwise; the tests are copied afresh on every run.
    rm -rf "$work/mutants/tests"
    # mutmut copies every other source only when its copy is missing: a run without --fresh
    # after the tree changed would test them as they were (a test new since then fails, or
    # waits, against its module's old copy). Only the mutated module's copy is kept.
    if [[ -d $work/mutants/src ]]; then
        find "$work/mutants/src" -type f ! -path "$work/mutants/$source" \
            ! -path "$work/mutants/$source.*" -delete
    fi
    if grep -q '^\[tool\.mutmut\]' "$work/pyproject.toml"; then
        echo "mutation.sh: pyproject.toml already has [tool.mutmut]; this script writes its own" >&2
        exit 2
    fi
    {
        echo
        echo "[tool.mutmut]"
        echo 'source_paths = ["src"]'
        echo "only_mutate = [\"$source\"]"
        # The deployment files too: the log tests check the collector and Loki configuration.
        echo 'also_copy = ["examples", "docs", "scripts", "benchmarks", "README.md",' \
            '"docker-compose.yml", "collector", "loki", "tempo", "prometheus", "grafana",' \
            '"alertmanager", "Dockerfile"]'
        printf 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "mutation_hypothesis", "-q"%s]\n' \
            "$(printf ', "--deselect", "%s"' "${deselect[@]}")"
        if [[ -n ${MUTATION_TIMEOUT_MULTIPLIER:-} ]]; then
            echo "timeout_multiplier = $MUTATION_TIMEOUT_MULTIPLIER"
        fi
        printf 'pytest_add_cli_args_test_selection = [%s]\n' \
            "$(printf '"%s", ' "${existing[@]}" | sed 's/, $//')"
    } >"$work/mutmut.toml.new"
    # mutmut drops every verdict, without a word, when its pytest arguments or test selection
    # differ from the last run's (docs/mutation.md): a run by name then checks no other mutant.
    if [[ -f $work/mutmut.toml ]] &&
        ! cmp -s <(grep '^pytest_add_cli_args' "$work/mutmut.toml") \
            <(grep '^pytest_add_cli_args' "$work/mutmut.toml.new"); then
        echo "mutation.sh: $module: not the last run's tests: mutmut forgets every verdict" >&2
    fi
    mv "$work/mutmut.toml.new" "$work/mutmut.toml"
    cat "$work/mutmut.toml" >>"$work/pyproject.toml"

    # While mutmut maps tests to functions (MUTANT_UNDER_TEST=stats), a Python subprocess a
    # test starts would try to record its hits too and fail: mutmut reads its configuration
    # from the working directory, which the subprocess does not share. It runs unmutated then
    # (its functions are not credited to the test); for each mutant it runs the mutant.
    mkdir -p "$work/site"
    cat >"$work/site/sitecustomize.py" <<'PY'
import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]
PY
    # A property test that fails a mutant would then shrink its example, for minutes under
    # nice on a loaded machine (up to mutmut's wall limit); the verdict needs no small example.
    # This pytest plugin (-p above) makes shrinking no part of a mutant's run.
    cat >"$work/site/mutation_hypothesis.py" <<'PY'
from hypothesis import Phase, settings

settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("mutation")
PY

    echo "== $source against ${existing[*]}"
    mkdir -p "$work/mutants/src"
    (
        cd "$work"
        PYTHONPATH="$work/site:$work/mutants/src${PYTHONPATH:+:$PYTHONPATH}" \
            nice -n 19 "$mutmut" run --max-children "${MUTATION_CHILDREN:-1}" "${names[@]}" \
                >"$work/run.log" 2>&1
    ) || { echo "mutation.sh: mutmut failed on $module, see $work/run.log" >&2; status=1; continue; }
    # mutmut counts a mutant its time limit stopped as killed, and under load it stops some
    # whose tests only ran slowly: each is run again alone, with a longer limit, and recorded
    # by what its tests then say (docs/mutation.md, "Running it").
    PYTHONPATH="$work/site:$work/mutants/src${PYTHONPATH:+:$PYTHONPATH}" nice -n 19 \
        "$root/.venv/bin/python" "$root/scripts/mutation_recheck.py" "$work" "$source" \
        | tee "$work/recheck.log" ||
        { echo "mutation.sh: the timeouts' re-run failed on $module" >&2; status=1; continue; }
    (cd "$work" && "$mutmut" export-cicd-stats >/dev/null)
    "$root/.venv/bin/python" - "$work/mutants/mutmut-cicd-stats.json" "$source" <<'EOF'
import json
import sys

stats = json.load(open(sys.argv[1]))
killed = stats["killed"] + stats["timeout"]
# Those a run given names (MUTATION_NAMES) left alone are in the total, in no other count.
checked = killed + sum(
    stats[k]
    for k in ("survived", "no_tests", "suspicious", "segfault", "check_was_interrupted_by_user")
)
tested = stats["total"] - stats["skipped"]
unchecked = f", {tested - checked} not checked" if checked < tested else ""
tested = min(tested, checked)
score = 100 * killed / tested if tested else 0.0
print(
    f"{sys.argv[2]}: {stats['total']} mutants, {killed} killed, {stats['survived']} survived, "
    f"{stats['no_tests']} without tests, {stats['suspicious']} suspicious{unchecked}: "
    f"score {score:.1f}%"
)
EOF
    # With MUTATION_NAMES the mutants left alone are said as a count above, not one a line.
    skip=': killed$'
    ((${#names[@]})) && skip=': \(killed\|not checked\)$'
    (cd "$work" && "$mutmut" results | grep -v "$skip" || true)
done
exit "$status"
