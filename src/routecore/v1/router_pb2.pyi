from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Constraints(_message.Message):
    __slots__ = ("max_cost_usd", "max_latency_ms", "min_quality", "required_capabilities", "allow_models", "deny_models", "max_output_tokens")
    MAX_COST_USD_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MODELS_FIELD_NUMBER: _ClassVar[int]
    DENY_MODELS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_cost_usd: float
    max_latency_ms: float
    min_quality: float
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    allow_models: _containers.RepeatedScalarFieldContainer[str]
    deny_models: _containers.RepeatedScalarFieldContainer[str]
    max_output_tokens: int
    def __init__(self, max_cost_usd: _Optional[float] = ..., max_latency_ms: _Optional[float] = ..., min_quality: _Optional[float] = ..., required_capabilities: _Optional[_Iterable[str]] = ..., allow_models: _Optional[_Iterable[str]] = ..., deny_models: _Optional[_Iterable[str]] = ..., max_output_tokens: _Optional[int] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("prompt", "messages", "tenant", "user", "strategy", "constraints", "request_id", "willingness_to_pay", "weight_quality", "weight_cost", "weight_latency", "explain", "compress")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WILLINGNESS_TO_PAY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_QUALITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_COST_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_LATENCY_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    COMPRESS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    tenant: str
    user: str
    strategy: str
    constraints: Constraints
    request_id: str
    willingness_to_pay: float
    weight_quality: float
    weight_cost: float
    weight_latency: float
    explain: bool
    compress: Compress
    def __init__(self, prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., tenant: _Optional[str] = ..., user: _Optional[str] = ..., strategy: _Optional[str] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., request_id: _Optional[str] = ..., willingness_to_pay: _Optional[float] = ..., weight_quality: _Optional[float] = ..., weight_cost: _Optional[float] = ..., weight_latency: _Optional[float] = ..., explain: _Optional[bool] = ..., compress: _Optional[_Union[Compress, _Mapping]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("model", "predicted_quality", "estimated_cost_usd", "estimated_latency_ms", "score", "rejected_reason", "provider", "observed_p50_ms", "observed_p95_ms", "observed_calls", "in_flight", "rpm_left", "tpm_left")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_P50_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_P95_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_CALLS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RPM_LEFT_FIELD_NUMBER: _ClassVar[int]
    TPM_LEFT_FIELD_NUMBER: _ClassVar[int]
    model: str
    predicted_quality: float
    estimated_cost_usd: float
    estimated_latency_ms: float
    score: float
    rejected_reason: str
    provider: str
    observed_p50_ms: float
    observed_p95_ms: float
    observed_calls: float
    in_flight: int
    rpm_left: float
    tpm_left: float
    def __init__(self, model: _Optional[str] = ..., predicted_quality: _Optional[float] = ..., estimated_cost_usd: _Optional[float] = ..., estimated_latency_ms: _Optional[float] = ..., score: _Optional[float] = ..., rejected_reason: _Optional[str] = ..., provider: _Optional[str] = ..., observed_p50_ms: _Optional[float] = ..., observed_p95_ms: _Optional[float] = ..., observed_calls: _Optional[float] = ..., in_flight: _Optional[int] = ..., rpm_left: _Optional[float] = ..., tpm_left: _Optional[float] = ...) -> None: ...

class RouteDecision(_message.Message):
    __slots__ = ("model", "provider", "fallbacks", "category", "complexity", "estimated_cost_usd", "estimated_latency_ms", "predicted_quality", "reason", "candidates", "router_version", "decision_micros", "request_id", "strategy", "category_confidence", "input_tokens", "model_version", "variant", "budget", "deployment", "deployment_order", "classifier_source", "classifier_cost_usd", "classifier_latency_ms", "classifier_model", "estimated_output_tokens", "output_tokens_basis", "compression")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_MICROS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_COST_USD_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_MODEL_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_BASIS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    provider: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    category: str
    complexity: float
    estimated_cost_usd: float
    estimated_latency_ms: float
    predicted_quality: float
    reason: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    router_version: str
    decision_micros: int
    request_id: str
    strategy: str
    category_confidence: float
    input_tokens: int
    model_version: str
    variant: str
    budget: BudgetState
    deployment: str
    deployment_order: _containers.RepeatedScalarFieldContainer[str]
    classifier_source: str
    classifier_cost_usd: float
    classifier_latency_ms: float
    classifier_model: str
    estimated_output_tokens: int
    output_tokens_basis: str
    compression: CompressionReport
    def __init__(self, model: _Optional[str] = ..., provider: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., category: _Optional[str] = ..., complexity: _Optional[float] = ..., estimated_cost_usd: _Optional[float] = ..., estimated_latency_ms: _Optional[float] = ..., predicted_quality: _Optional[float] = ..., reason: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., router_version: _Optional[str] = ..., decision_micros: _Optional[int] = ..., request_id: _Optional[str] = ..., strategy: _Optional[str] = ..., category_confidence: _Optional[float] = ..., input_tokens: _Optional[int] = ..., model_version: _Optional[str] = ..., variant: _Optional[str] = ..., budget: _Optional[_Union[BudgetState, _Mapping]] = ..., deployment: _Optional[str] = ..., deployment_order: _Optional[_Iterable[str]] = ..., classifier_source: _Optional[str] = ..., classifier_cost_usd: _Optional[float] = ..., classifier_latency_ms: _Optional[float] = ..., classifier_model: _Optional[str] = ..., estimated_output_tokens: _Optional[int] = ..., output_tokens_basis: _Optional[str] = ..., compression: _Optional[_Union[CompressionReport, _Mapping]] = ...) -> None: ...

class BudgetState(_message.Message):
    __slots__ = ("share_used", "remaining_usd", "cap", "pacing")
    SHARE_USED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_USD_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    PACING_FIELD_NUMBER: _ClassVar[int]
    share_used: float
    remaining_usd: float
    cap: str
    pacing: float
    def __init__(self, share_used: _Optional[float] = ..., remaining_usd: _Optional[float] = ..., cap: _Optional[str] = ..., pacing: _Optional[float] = ...) -> None: ...

class RouteBatchRequest(_message.Message):
    __slots__ = ("requests", "explain")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RouteRequest]
    explain: bool
    def __init__(self, requests: _Optional[_Iterable[_Union[RouteRequest, _Mapping]]] = ..., explain: _Optional[bool] = ...) -> None: ...

class BatchItemError(_message.Message):
    __slots__ = ("index", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: str
    message: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RouteBatchResponse(_message.Message):
    __slots__ = ("decisions", "errors")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[RouteDecision]
    errors: _containers.RepeatedCompositeFieldContainer[BatchItemError]
    def __init__(self, decisions: _Optional[_Iterable[_Union[RouteDecision, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[BatchItemError, _Mapping]]] = ...) -> None: ...

class CompleteBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CompleteRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CompleteRequest, _Mapping]]] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class BatchItem(_message.Message):
    __slots__ = ("index", "request_id", "model", "provider", "text", "finish_reason", "usage", "cost_usd", "standard_cost_usd", "error_code", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    STANDARD_COST_USD_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    request_id: str
    model: str
    provider: str
    text: str
    finish_reason: str
    usage: Usage
    cost_usd: float
    standard_cost_usd: float
    error_code: str
    error: str
    def __init__(self, index: _Optional[int] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., text: _Optional[str] = ..., finish_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., standard_cost_usd: _Optional[float] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class BatchJob(_message.Message):
    __slots__ = ("job_id", "status", "created_at_unix", "total", "succeeded", "failed", "items", "cost_usd", "standard_cost_usd")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    STANDARD_COST_USD_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    created_at_unix: int
    total: int
    succeeded: int
    failed: int
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    cost_usd: float
    standard_cost_usd: float
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., created_at_unix: _Optional[int] = ..., total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ..., cost_usd: _Optional[float] = ..., standard_cost_usd: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "provider", "model_id", "version", "input_price_per_mtok", "output_price_per_mtok", "context_window", "capabilities", "quality", "latency_p50_ms", "latency_p95_ms", "fallbacks", "max_output_tokens", "versions", "deployments")
    class QualityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    model_id: str
    version: str
    input_price_per_mtok: float
    output_price_per_mtok: float
    context_window: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    quality: _containers.ScalarMap[str, float]
    latency_p50_ms: float
    latency_p95_ms: float
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    max_output_tokens: int
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionInfo]
    deployments: _containers.RepeatedCompositeFieldContainer[DeploymentInfo]
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[str] = ..., input_price_per_mtok: _Optional[float] = ..., output_price_per_mtok: _Optional[float] = ..., context_window: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ..., quality: _Optional[_Mapping[str, float]] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., fallbacks: _Optional[_Iterable[str]] = ..., max_output_tokens: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[ModelVersionInfo, _Mapping]]] = ..., deployments: _Optional[_Iterable[_Union[DeploymentInfo, _Mapping]]] = ...) -> None: ...

class ModelVersionInfo(_message.Message):
    __slots__ = ("name", "model_id", "input_price_per_mtok", "output_price_per_mtok", "pinned", "share", "rollout_state", "rollout_reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_STATE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_id: str
    input_price_per_mtok: float
    output_price_per_mtok: float
    pinned: bool
    share: float
    rollout_state: str
    rollout_reason: str
    def __init__(self, name: _Optional[str] = ..., model_id: _Optional[str] = ..., input_price_per_mtok: _Optional[float] = ..., output_price_per_mtok: _Optional[float] = ..., pinned: _Optional[bool] = ..., share: _Optional[float] = ..., rollout_state: _Optional[str] = ..., rollout_reason: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "router_version")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    router_version: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., router_version: _Optional[str] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("route", "max_output_tokens", "temperature", "cascade", "cascade_threshold", "ensemble_size", "json_mode", "cache", "cache_max_age_s")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    CASCADE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    JSON_MODE_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CACHE_MAX_AGE_S_FIELD_NUMBER: _ClassVar[int]
    route: RouteRequest
    max_output_tokens: int
    temperature: float
    cascade: bool
    cascade_threshold: float
    ensemble_size: int
    json_mode: bool
    cache: str
    cache_max_age_s: int
    def __init__(self, route: _Optional[_Union[RouteRequest, _Mapping]] = ..., max_output_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., cascade: _Optional[bool] = ..., cascade_threshold: _Optional[float] = ..., ensemble_size: _Optional[int] = ..., json_mode: _Optional[bool] = ..., cache: _Optional[str] = ..., cache_max_age_s: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("provider", "model", "deployment", "error", "duration_ms", "retry")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    deployment: str
    error: str
    duration_ms: float
    retry: int
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., deployment: _Optional[str] = ..., error: _Optional[str] = ..., duration_ms: _Optional[float] = ..., retry: _Optional[int] = ...) -> None: ...

class CascadeStep(_message.Message):
    __slots__ = ("model", "confidence", "escalated", "reason", "cost_usd")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    model: str
    confidence: float
    escalated: bool
    reason: str
    cost_usd: float
    def __init__(self, model: _Optional[str] = ..., confidence: _Optional[float] = ..., escalated: _Optional[bool] = ..., reason: _Optional[str] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ("text", "model", "usage", "cost_usd", "latency_ms", "attempts", "cascade_steps", "decision", "request_id", "provider", "finish_reason", "deployment", "cache_hit", "saved_usd", "tokens_saved")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CASCADE_STEPS_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    usage: Usage
    cost_usd: float
    latency_ms: float
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    cascade_steps: _containers.RepeatedCompositeFieldContainer[CascadeStep]
    decision: RouteDecision
    request_id: str
    provider: str
    finish_reason: str
    deployment: str
    cache_hit: str
    saved_usd: float
    tokens_saved: int
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., cascade_steps: _Optional[_Iterable[_Union[CascadeStep, _Mapping]]] = ..., decision: _Optional[_Union[RouteDecision, _Mapping]] = ..., request_id: _Optional[str] = ..., provider: _Optional[str] = ..., finish_reason: _Optional[str] = ..., deployment: _Optional[str] = ..., cache_hit: _Optional[str] = ..., saved_usd: _Optional[float] = ..., tokens_saved: _Optional[int] = ...) -> None: ...

class CompleteChunk(_message.Message):
    __slots__ = ("delta", "model", "usage", "cost_usd", "done", "attempts", "request_id", "finish_reason", "deployment", "cache_hit", "saved_usd", "tokens_saved")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    delta: str
    model: str
    usage: Usage
    cost_usd: float
    done: bool
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    request_id: str
    finish_reason: str
    deployment: str
    cache_hit: str
    saved_usd: float
    tokens_saved: int
    def __init__(self, delta: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., done: _Optional[bool] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., request_id: _Optional[str] = ..., finish_reason: _Optional[str] = ..., deployment: _Optional[str] = ..., cache_hit: _Optional[str] = ..., saved_usd: _Optional[float] = ..., tokens_saved: _Optional[int] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "model", "score", "comment", "source")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    model: str
    score: float
    comment: str
    source: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., model: _Optional[str] = ..., score: _Optional[float] = ..., comment: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("feedback_id", "learned")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    learned: bool
    def __init__(self, feedback_id: _Optional[str] = ..., learned: _Optional[bool] = ...) -> None: ...

class BudgetRequest(_message.Message):
    __slots__ = ("tenant", "user")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    user: str
    def __init__(self, tenant: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class BudgetWindow(_message.Message):
    __slots__ = ("scope", "name", "limit_name", "period", "spent", "reserved", "limit", "remaining", "resets_at_unix", "resets_at")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NAME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESETS_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    RESETS_AT_FIELD_NUMBER: _ClassVar[int]
    scope: str
    name: str
    limit_name: str
    period: str
    spent: float
    reserved: float
    limit: float
    remaining: float
    resets_at_unix: int
    resets_at: str
    def __init__(self, scope: _Optional[str] = ..., name: _Optional[str] = ..., limit_name: _Optional[str] = ..., period: _Optional[str] = ..., spent: _Optional[float] = ..., reserved: _Optional[float] = ..., limit: _Optional[float] = ..., remaining: _Optional[float] = ..., resets_at_unix: _Optional[int] = ..., resets_at: _Optional[str] = ...) -> None: ...

class BudgetStatus(_message.Message):
    __slots__ = ("tenant", "user", "windows")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    user: str
    windows: _containers.RepeatedCompositeFieldContainer[BudgetWindow]
    def __init__(self, tenant: _Optional[str] = ..., user: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[BudgetWindow, _Mapping]]] = ...) -> None: ...

class DeploymentInfo(_message.Message):
    __slots__ = ("name", "provider", "endpoint", "model_id", "weight", "input_price_per_mtok", "output_price_per_mtok", "price_tiers", "latency_p50_ms", "latency_p95_ms", "rpm", "tpm")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIERS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    RPM_FIELD_NUMBER: _ClassVar[int]
    TPM_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    endpoint: str
    model_id: str
    weight: float
    input_price_per_mtok: float
    output_price_per_mtok: float
    price_tiers: _containers.RepeatedCompositeFieldContainer[PriceTierInfo]
    latency_p50_ms: float
    latency_p95_ms: float
    rpm: int
    tpm: int
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., endpoint: _Optional[str] = ..., model_id: _Optional[str] = ..., weight: _Optional[float] = ..., input_price_per_mtok: _Optional[float] = ..., output_price_per_mtok: _Optional[float] = ..., price_tiers: _Optional[_Iterable[_Union[PriceTierInfo, _Mapping]]] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., rpm: _Optional[int] = ..., tpm: _Optional[int] = ...) -> None: ...

class PriceTierInfo(_message.Message):
    __slots__ = ("above_input_tokens", "input_price_per_mtok", "output_price_per_mtok")
    ABOVE_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    above_input_tokens: int
    input_price_per_mtok: float
    output_price_per_mtok: float
    def __init__(self, above_input_tokens: _Optional[int] = ..., input_price_per_mtok: _Optional[float] = ..., output_price_per_mtok: _Optional[float] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("applied", "config_path", "router_version", "models", "rollout", "peers_signalled", "alarms_cleared")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    PEERS_SIGNALLED_FIELD_NUMBER: _ClassVar[int]
    ALARMS_CLEARED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    config_path: str
    router_version: str
    models: int
    rollout: str
    peers_signalled: int
    alarms_cleared: int
    def __init__(self, applied: _Optional[bool] = ..., config_path: _Optional[str] = ..., router_version: _Optional[str] = ..., models: _Optional[int] = ..., rollout: _Optional[str] = ..., peers_signalled: _Optional[int] = ..., alarms_cleared: _Optional[int] = ...) -> None: ...

class Compress(_message.Message):
    __slots__ = ("target_ratio", "max_input_tokens")
    TARGET_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    target_ratio: float
    max_input_tokens: int
    def __init__(self, target_ratio: _Optional[float] = ..., max_input_tokens: _Optional[int] = ...) -> None: ...

class CompressionReport(_message.Message):
    __slots__ = ("input_tokens_before", "tokens_saved", "chunks", "chunks_dropped", "micros")
    INPUT_TOKENS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    MICROS_FIELD_NUMBER: _ClassVar[int]
    input_tokens_before: int
    tokens_saved: int
    chunks: int
    chunks_dropped: int
    micros: int
    def __init__(self, input_tokens_before: _Optional[int] = ..., tokens_saved: _Optional[int] = ..., chunks: _Optional[int] = ..., chunks_dropped: _Optional[int] = ..., micros: _Optional[int] = ...) -> None: ...
