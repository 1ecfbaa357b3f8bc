"""LiteLLM Proxy's config keys and what llm-scope does with each, so no key in a config is ignored silently.

A LiteLLM user's `config.yaml` carries keys for features llm-scope has, has differently, or lacks. Each
key we do not act on becomes a `ConfigNote` naming its path, which start-up logs and `check-config`
prints; a key close to a known one gets a "did you mean" (a typo is the usual reason it is unknown).
Plain tables, no imports of ours: `model_config.py` walks the file with them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# LiteLLM 1.106's `litellm.provider_list` (tests/test_litellm_keys.py fails when LiteLLM adds one), plus ours.
KNOWN_PROVIDERS = _words(
    """
a2a a2a_agent ai21 ai21_chat aiml aiohttp_openai amazon_nova anthropic anthropic_text apertis assemblyai
auto_router aws_polly aws_textract azure azure_ai azure_speech azure_text baseten bedrock bedrock_mantle
black_forest_labs bytez cerebras charity_engine chatgpt chutes clarifai cloudflare codestral cognition cohere
cohere_chat cometapi compactifai cortecs cursor custom custom_openai darkbloom dashscope databricks datarobot
deepgram deepinfra deepseek docker_model_runner dotprompt edenai elevenlabs empower fal_ai featherless_ai
fireworks_ai friendliai galadriel gdc gemini gigachat github github_copilot gradient_ai groq helicone heroku
hosted_vllm huggingface humanloop hyperbolic inception infinity jina_ai lambda_ai langflow langfuse langgraph
lemonade libertai litellm_agent litellm_proxy llamafile lm_studio manus maritalk meta meta_llama milvus minimax
mistral modelscope mongodb moonshot morph nadir nano-gpt nebius neosantara nlp_cloud novita nscale nvidia_nim
nvidia_riva oci ollama ollama_chat oobabooga openai openai_like openrouter ovhcloud parasail perplexity petals
pg_vector pinstripes poe predibase prism publicai qwen_ai_platform qwencloud ragflow recraft reducto reka
replicate runwayml s3_vectors sagemaker sagemaker_chat sagemaker_nova sail sambanova sap scaleway scx-ai
snowflake soniox stability strands_decider synthetic tencent tensormesh text-completion-codestral
text-completion-inception text-completion-openai together_ai topaz transcribe triton typesafe v0 valkey
vercel_ai_gateway vertex_ai vertex_ai_beta vllm volcengine voyage wandb watsonx watsonx_text xai xiaomi_mimo
xinference zai mock
"""
)


class ConfigError(ValueError):
    """An invalid config file; the message names the file, entry and field."""


NoteKind = Literal["ignored", "unknown", "typo", "unavailable", "invalid", "different"]


@dataclass(frozen=True)
class ConfigNote:
    """One thing start-up and `check-config` tell the user. `invalid` (an unknown provider) and `typo` (an
    unknown key close to a known one) fail `check-config`; the rest warn. `serve` starts on all of them."""

    kind: NoteKind
    path: str  # the key path in the file: "litellm_settings.cache", "model_list[2] (claude)"
    message: str

    @property
    def is_error(self) -> bool:
        return self.kind in ("invalid", "typo")

    def line(self, source: str) -> str:
        return f"{source}: {self.kind}: {self.path} — {self.message}"


NOT_A_FEATURE = "a LiteLLM Proxy setting llm-scope does not have"
_CACHE = "response caching is not supported"
_ALERTS = "alerting is not supported; alert on the Prometheus metrics at /metrics instead"
_HEALTH = "background health checks are not supported; /ready and per-deployment cooldowns instead"
_DB = "not used: each worker opens at most 3 PostgreSQL connections (docs/DEPLOYMENT.md, several instances)"
_REDIS = "set REDIS_URL instead (shared rate limits); LiteLLM's redis_* router keys are not read"
_SPEND = "LiteLLM's spend tables are not kept; every call is in llm-scope's own trace store"

TOP_LEVEL_ACTED = frozenset(
    {"model_list", "litellm_settings", "router_settings", "general_settings", "environment_variables", "include"}
)
TOP_LEVEL_REASONS = {
    "guardrails": "guardrails are not supported",
    "policies": "guardrail policies are not supported",
    "policy_attachments": "guardrail policies are not supported",
    "search_tools": "search tools (web search interception) are not supported",
    "sandbox_tools": "sandbox tools (code interpreter interception) are not supported",
    "finetune_settings": "the /fine_tuning endpoints are not supported",
    "files_settings": "the /files endpoints are not supported",
    "assistant_settings": "the Assistants API is not supported",
    "callback_settings": "per-callback settings are not supported; Langfuse is configured by LANGFUSE_* variables",
    "credential_list": "named credentials are not supported; put keys in litellm_params (os.environ/NAME works)",
    "mcp_servers": "the MCP gateway is not supported",
    "mcp_aliases": "the MCP gateway is not supported",
    "vector_store_registry": "vector stores are not supported",
    "default_vertex_config": "Vertex pass-through routes are not supported",
    "prompts": "prompt management is not supported",
    "worker_registry": NOT_A_FEATURE,
}

GENERAL_ACTED = frozenset({"master_key", "database_url"})
GENERAL_REASONS = {
    "database_connection_pool_limit": _DB,
    "database_connection_timeout": _DB,
    "store_model_in_db": "models come from the config file only",
    "disable_spend_logs": _SPEND,
    "disable_prisma_schema_update": _SPEND,
    "alerting": _ALERTS,
    "alert_types": _ALERTS,
    "alerting_threshold": _ALERTS,
    "alert_to_webhook_url": _ALERTS,
    "background_health_checks": _HEALTH,
    "health_check_interval": _HEALTH,
    "health_check_details": _HEALTH,
    "otel": "OpenTelemetry export from general_settings is not supported; Langfuse export uses LANGFUSE_* variables",
    "custom_auth": "custom auth hooks are not supported: the master key and virtual keys (llm-scope keys) are",
    "pass_through_endpoints": "pass-through endpoints are not supported",
    "max_parallel_requests": "set LLM_SCOPE_MAX_CONCURRENCY instead (per worker)",
    "global_max_parallel_requests": "set LLM_SCOPE_MAX_CONCURRENCY instead (per worker)",
    "max_request_size_mb": "set LLM_SCOPE_MAX_BODY_BYTES instead",
    "coordination_redis": _REDIS,
    "use_redis_transaction_buffer": _REDIS,
    "enable_jwt_auth": "JWT auth is not supported: the master key and virtual keys are",
    "litellm_jwtauth": "JWT auth is not supported: the master key and virtual keys are",
    "ui_access_mode": "the dashboard at /ui signs in with the master key",
    "allowed_routes": "route allow-lists are not supported; virtual keys may call the model routes only",
}
GENERAL_KNOWN = _words(
    """
completion_model key_management_system use_google_kms use_azure_key_vault dangerously_permit_weak_or_unset_master_key
database_connect_timeout database_socket_timeout database_type database_args infer_model_from_keys
health_check_concurrency model_list_healthy_only alerting_args max_response_size_mb cancel_on_disconnect
proxy_config_reload_interval_seconds reject_clientside_metadata_tags enable_public_model_hub user_header_name
forward_client_headers_to_llm_api store_prompts_in_spend_logs maximum_spend_logs_retention_period
disable_master_key_return enforce_user_param proxy_batch_write_at litellm_license custom_team_metadata_validate
team_metadata_validation_timeout team_metadata_validation_error_message custom_key_generate custom_sso
disable_reset_budget proxy_budget_rescheduler_min_time proxy_budget_rescheduler_max_time
pass_through_request_timeout user_api_key_cache_max_size allow_requests_on_db_unavailable
"""
)

LITELLM_ACTED = frozenset(
    {
        "drop_params",
        "num_retries",
        "request_timeout",
        "fallbacks",
        "default_fallbacks",
        "success_callback",
        "callbacks",
        "failure_callback",
        "turn_off_message_logging",
        "allowed_fails",
        "cooldown_time",
        "retry_after",
    }
)
LITELLM_REASONS = {
    "cache": _CACHE,
    "cache_params": _CACHE,
    "set_verbose": "set LOG_LEVEL=DEBUG (or DEBUG_MODE=true) instead",
    "json_logs": "set LOG_FORMAT=json instead",
    "context_window_fallbacks": "context-window fallbacks are not supported: the upstream's 400 goes to the client",
    "content_policy_fallbacks": "content-policy fallbacks are not supported: the upstream's 400 goes to the client",
    "max_budget": "a proxy-wide budget is not supported; give virtual keys budgets (llm-scope keys create)",
    "budget_duration": "a proxy-wide budget is not supported; give virtual keys budgets (llm-scope keys create)",
    "redact_user_api_key_info": "already so: keys never reach logs, traces or metrics",
    "redact_messages_in_exceptions": "already so: error bodies never carry keys",
    "default_team_settings": "teams are not supported",
    "guardrails": "guardrails are not supported",
    "ssl_verify": "upstream TLS is always verified",
    "service_callback": "service callbacks are not supported",
    "modify_params": "request bodies are passed through, not modified",
}
LITELLM_KNOWN = _words(
    """
max_internal_user_budget internal_user_budget_duration max_end_user_budget default_internal_user_params
default_key_generate_params upperbound_key_generate_params key_generation_settings disable_end_user_cost_tracking
disable_end_user_cost_tracking_prometheus_only enable_preview_features require_auth_for_metrics_endpoint
include_cost_in_streaming_usage websearch_interception_params code_interpreter_interception_params force_ipv4
return_response_headers forward_traceparent_to_llm_provider enable_json_schema_validation prometheus_metrics_config
langfuse_default_tags enable_azure_ad_token_refresh disable_streaming_logging add_function_to_prompt
cache_responses enable_loadbalancing_on_batch_endpoints disable_add_transform_inline_image_block
"""
)
# Callback names in litellm_settings.success_callback / callbacks / failure_callback.
LANGFUSE_CALLBACKS = frozenset({"langfuse", "langfuse_otel"})
CALLBACK_REASONS = {
    "prometheus": "already on: Prometheus metrics are served at /metrics (and METRICS_PORT)",
    "otel": "OpenTelemetry export is not supported; Langfuse export uses LANGFUSE_* variables",
}

ROUTER_ACTED = frozenset(
    {
        "routing_strategy",
        "model_group_alias",
        "allowed_fails",
        "cooldown_time",
        "disable_cooldowns",
        "num_retries",
        "retry_after",
        "timeout",
        "fallbacks",
        "default_fallbacks",
    }
)
ROUTER_REASONS = {
    "redis_host": _REDIS,
    "redis_port": _REDIS,
    "redis_password": _REDIS,
    "redis_url": _REDIS,
    "cache_responses": _CACHE,
    "context_window_fallbacks": LITELLM_REASONS["context_window_fallbacks"],
    "content_policy_fallbacks": LITELLM_REASONS["content_policy_fallbacks"],
    "enable_pre_call_checks": "pre-call context-window checks are not supported",
    "enable_tag_filtering": "tag-based routing is not supported",
    "retry_policy": "per-error retry policies are not supported; num_retries applies to every retryable error",
    "model_group_retry_policy": "per-model retry policies are not supported; num_retries applies to every model",
    "allowed_fails_policy": "per-error allowed_fails are not supported; allowed_fails applies to every failure",
    "provider_budget_config": "provider budgets are not supported",
    "stream_timeout": "set timeout per deployment in litellm_params (stream_timeout there is read as timeout)",
}
ROUTER_KNOWN = _words(
    """
model_list assistants_config search_tools guardrail_list redis_db cache_kwargs caching_groups client_ttl
polling_interval default_priority max_fallbacks default_litellm_params default_max_parallel_requests set_verbose
debug_level tag_filtering_match_any tag_routing_prefix plugins optional_pre_call_checks routing_strategy_args
routing_groups alerting_config router_general_settings deployment_affinity_ttl_seconds model_group_affinity_config
ignore_invalid_deployments enable_health_check_routing health_check_staleness_threshold
health_check_ignore_transient_errors background_health_check_model_groups enable_weighted_failover
"""
)
# LiteLLM's routing_strategy values, and what llm-scope does for each.
ROUTING_STRATEGIES = {
    "simple-shuffle": "simple-shuffle",
    "least-busy": "least-busy",
    "latency-based-routing": "latency-based-routing",
}
UNSUPPORTED_STRATEGIES = frozenset(
    {"usage-based-routing", "usage-based-routing-v2", "cost-based-routing", "provider-budget-routing"}
)

# model_list entries and their litellm_params.
ENTRY_ACTED = frozenset({"model_name", "litellm_params", "model_info"})
ENTRY_REASONS = {
    "tpm": "per-deployment rate limits are not supported; give virtual keys rpm/tpm",
    "rpm": "per-deployment rate limits are not supported; give virtual keys rpm/tpm",
}
PARAMS_USED = frozenset({"model", "api_base", "base_url", "api_key", "api_version", "timeout", "stream_timeout"})
# litellm_params the LiteLLM router reads itself (never sent to the provider), and what we do instead.
PARAMS_ROUTER_ONLY = {
    "tpm": ENTRY_REASONS["tpm"],
    "rpm": ENTRY_REASONS["rpm"],
    "max_parallel_requests": "per-deployment concurrency limits are not supported",
    "weight": "weighted routing is not supported; deployments of a name share calls evenly",
    "order": "deployment priority order is not supported; deployments of a name share calls evenly",
    "tags": "tag-based routing is not supported",
    "max_retries": "per-deployment retries are not supported; router_settings.num_retries applies",
    "num_retries": "per-deployment retries are not supported; router_settings.num_retries applies",
    "max_budget": "per-deployment budgets are not supported",
    "budget_duration": "per-deployment budgets are not supported",
    "region_name": "region-based routing is not supported",
    "supported_environments": "per-environment deployments are not supported",
    "litellm_credential_name": TOP_LEVEL_REASONS["credential_list"],
    "use_in_pass_through": "pass-through routes are not supported",
    "configurable_clientside_auth_params": "client-side credentials are not supported",
}
# LiteLLM 1.106's litellm_params fields (GenericLiteLLMParams, LiteLLM_Params) and common call parameters:
# known, so they get no "did you mean".
PARAMS_KNOWN = _words(
    """
adaptive_router_config adaptive_router_default_model allow_client_keepalive_override
anthropic_disable_workload_identity_federation anthropic_federation_rule_id anthropic_federation_workspace_id
anthropic_identity_source anthropic_identity_token anthropic_identity_token_file anthropic_issuer_audience
anthropic_issuer_signing_key_ref anthropic_issuer_subject anthropic_issuer_ttl_seconds anthropic_issuer_url
anthropic_keycloak_auth_method anthropic_keycloak_client_id anthropic_keycloak_client_secret_ref
anthropic_keycloak_scope anthropic_keycloak_token_url anthropic_organization_id anthropic_service_account_id
api_base api_key api_version auto_router_config auto_router_config_path auto_router_default_model
auto_router_embedding_model auto_router_max_input_chars auto_router_model_compression
auto_router_routing_compression aws_access_key_id aws_batch_role_arn aws_bedrock_project_id
aws_bedrock_runtime_endpoint aws_external_id aws_profile_name aws_region_name aws_role_name
aws_secret_access_key aws_session_name aws_session_tags aws_session_token aws_sts_endpoint
aws_web_identity_token azure_ad_token azure_password azure_scope azure_username bedrock_tags bucket_name
budget_duration client_id client_secret complexity_router_config complexity_router_default_model
configurable_clientside_auth_params custom_llm_provider default_api_key_rpm_limit default_api_key_tpm_limit
drop_params extra_headers fireworks_forward_user_id gcs_bucket_name headers input_cost_per_token itpm
keepalive_seconds litellm_credential_name litellm_trace_id max_budget max_file_size_mb max_retries max_tokens
merge_reasoning_content_in_choices milvus_db_name milvus_partition_names milvus_text_field mock_response model
model_info openai_identity_provider_id openai_identity_token_file openai_service_account_id order organization
otpm output_cost_per_token provider_affinity_header quality_router_config quality_router_default_model
region_name rpm s3_access_key_id s3_bucket_name s3_bucket_owner s3_encryption_key_id s3_endpoint_url
s3_output_bucket_name s3_region_name s3_secret_access_key stream_timeout stream_timeout_by_service_tier
tag_regex tags temperature tenant_id timeout timeout_by_service_tier top_p tpm use_chat_completions_api
use_in_pass_through use_litellm_proxy use_xai_oauth valkey_embedding_field valkey_host valkey_password
valkey_port valkey_ssl valkey_text_field vector_store_id vertex_credentials vertex_location vertex_project
watsonx_region_name weight
"""
)
MODEL_INFO_USED = frozenset(
    {"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "cache_creation_input_token_cost"}
)


def suggest(key: str, known: Iterable[str]) -> str | None:
    """The known key `key` is most likely a typo of, if any is close enough."""
    found = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    return found[0] if found else None


def section_notes(
    section: str,
    values: Mapping[str, Any],
    acted: frozenset[str],
    reasons: Mapping[str, str],
    known: frozenset[str],
) -> list[ConfigNote]:
    """A note for every key of `section` that llm-scope does not act on."""
    notes = []
    for key in values:
        key = str(key)
        path = f"{section}.{key}" if section else key
        if key in acted:
            continue
        if key in reasons:
            notes.append(ConfigNote("ignored", path, reasons[key]))
        elif key in known:
            notes.append(ConfigNote("ignored", path, NOT_A_FEATURE))
        elif (guess := suggest(key, [*acted, *reasons, *known])) is not None:
            notes.append(ConfigNote("typo", path, f"did you mean '{guess}'? ignored as written"))
        else:
            notes.append(ConfigNote("unknown", path, "not a key llm-scope or LiteLLM knows; ignored"))
    return notes
