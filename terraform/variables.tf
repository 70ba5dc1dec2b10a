################################################################################
# General
################################################################################

variable "aws_region" {
  description = "AWS region to deploy the stack into."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be a region code such as eu-west-1 or us-gov-west-1."
  }
}

variable "project_name" {
  description = "Project name, the first part of every resource name (<project_name>-<workspace>-...)."
  type        = string
  default     = "wsfanout"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 2-20 characters of lowercase letters, digits and dashes, starting with a letter and not ending with a dash."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource (Project, Workspace and ManagedBy are always added)."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Optional customer-managed KMS key ARN for the log groups, the DynamoDB tables, the fan-out queue and its dead-letter queue, the Lambda environment, the JWT signing secret and the alarm topic. null keeps AWS-managed encryption (SQS-managed SSE for the queues). Each function role is granted what it needs of the key, only through the service that uses it; the roles of producer_role_arns, and operators who read the dead-letter queue, need kms:GenerateDataKey and kms:Decrypt on it themselves. The key policy (docs/deploy.md) must allow the account's IAM policies, logs.<region>.amazonaws.com and cloudwatch.amazonaws.com (for the alarm topic)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "log_retention_days" {
  description = "Retention of the Lambda and API Gateway log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

################################################################################
# Lambda functions
################################################################################

variable "lambda_architecture" {
  description = "Instruction set of the Lambda functions; must match how the zips were built (cargo lambda build --arm64 or --x86-64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "log_level" {
  description = "RUST_LOG filter for every function (e.g. info, or info,fanout=debug)."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be a RUST_LOG filter such as info or warn,fanout=debug."
  }
}

variable "api_function_memory_mb" {
  description = "Memory size of the API-driven functions (connect, disconnect, sendmessage, recover, default, publish, and the authorizer), in MB."
  type        = number
  default     = 128

  validation {
    condition     = var.api_function_memory_mb >= 128 && var.api_function_memory_mb <= 10240
    error_message = "api_function_memory_mb must be between 128 and 10240."
  }
}

variable "api_function_timeout_seconds" {
  description = "Timeout of the API-driven functions, in seconds (API Gateway gives up on an integration after 29 s)."
  type        = number
  default     = 10

  validation {
    condition     = var.api_function_timeout_seconds >= 1 && var.api_function_timeout_seconds <= 29
    error_message = "api_function_timeout_seconds must be between 1 and 29."
  }
}

variable "worker_memory_mb" {
  description = "Memory size of the fan-out worker, in MB (CPU and network bandwidth scale with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.worker_memory_mb >= 128 && var.worker_memory_mb <= 10240
    error_message = "worker_memory_mb must be between 128 and 10240."
  }
}

variable "worker_timeout_seconds" {
  description = "Timeout of the fan-out worker, in seconds. The fan-out queue's visibility timeout is six times this."
  type        = number
  default     = 60

  validation {
    condition     = var.worker_timeout_seconds >= 10 && var.worker_timeout_seconds <= 900
    error_message = "worker_timeout_seconds must be between 10 and 900."
  }
}

variable "connection_ttl_seconds" {
  description = "Lifetime of a connection record (expiresAt = connect time + this). API Gateway closes every connection after 2 h and $disconnect is best-effort, so this is 2 h plus a margin."
  type        = number
  default     = 7500

  validation {
    condition     = var.connection_ttl_seconds > 7200 && var.connection_ttl_seconds <= 604800 && floor(var.connection_ttl_seconds) == var.connection_ttl_seconds
    error_message = "connection_ttl_seconds must be a whole number more than 7200 (API Gateway's 2 h connection limit) and at most 604800."
  }
}

variable "max_rooms_per_connection" {
  description = "The most rooms one connection may be in (MAX_ROOMS_PER_CONNECTION); a join past it is refused with too_many_rooms."
  type        = number
  default     = 100

  validation {
    condition     = var.max_rooms_per_connection >= 1 && var.max_rooms_per_connection <= 1000 && floor(var.max_rooms_per_connection) == var.max_rooms_per_connection
    error_message = "max_rooms_per_connection must be a whole number between 1 and 1000 (a connection's item names each of its rooms)."
  }
}

variable "max_data_bytes" {
  description = "Largest accepted `data` of a sendmessage, in bytes (the job must fit SQS's 256 KiB with the envelope; a WebSocket frame is at most 128 KiB)."
  type        = number
  default     = 65536

  validation {
    condition     = var.max_data_bytes >= 1 && var.max_data_bytes <= 130048 && floor(var.max_data_bytes) == var.max_data_bytes
    error_message = "max_data_bytes must be a whole number between 1 and 130048."
  }
}

variable "history_size" {
  description = "How many of each room's last messages are kept for recovery (HISTORY_SIZE); 0 keeps none: offsets still number messages, and every recovery answers complete = false."
  type        = number
  default     = 100

  validation {
    condition     = var.history_size >= 0 && var.history_size <= 1000 && floor(var.history_size) == var.history_size
    error_message = "history_size must be a whole number between 0 and 1000."
  }
}

variable "alarm_recoveries_incomplete" {
  description = "Recoveries answered complete = false in 5 minutes above which the recoveries-incomplete alarm fires (clients reloading their state because history did not reach back)."
  type        = number
  default     = 50

  validation {
    condition     = var.alarm_recoveries_incomplete >= 0
    error_message = "alarm_recoveries_incomplete must be 0 or more."
  }
}

variable "history_ttl_seconds" {
  description = "How long a room keeps a message for recovery, in seconds (HISTORY_TTL_SECONDS). DynamoDB's TTL deletes late; reads filter by expiry."
  type        = number
  default     = 3600

  validation {
    condition     = var.history_ttl_seconds >= 60 && var.history_ttl_seconds <= 604800 && floor(var.history_ttl_seconds) == var.history_ttl_seconds
    error_message = "history_ttl_seconds must be a whole number between 60 and 604800 (7 days)."
  }
}

variable "fanout_concurrency" {
  description = "Worker: in-flight PostToConnection calls shared by a whole batch."
  type        = number
  default     = 256

  validation {
    condition     = var.fanout_concurrency >= 1 && var.fanout_concurrency <= 1000 && floor(var.fanout_concurrency) == var.fanout_concurrency
    error_message = "fanout_concurrency must be a whole number between 1 and 1000 (a Lambda may open 1,024 files)."
  }
}

variable "post_timeout_ms" {
  description = "Worker: timeout of one PostToConnection call, in milliseconds."
  type        = number
  default     = 3000

  validation {
    condition     = var.post_timeout_ms >= 100 && var.post_timeout_ms <= 29000 && floor(var.post_timeout_ms) == var.post_timeout_ms
    error_message = "post_timeout_ms must be a whole number between 100 and 29000 (API Gateway's longest integration timeout)."
  }
}

variable "deadline_margin_ms" {
  description = "Worker: stop taking pages and enqueue a continuation this long before the Lambda deadline, in milliseconds. Must exceed post_timeout_ms and be below the worker timeout."
  type        = number
  default     = 5000

  validation {
    condition     = var.deadline_margin_ms >= 1000 && var.deadline_margin_ms <= 600000 && floor(var.deadline_margin_ms) == var.deadline_margin_ms
    error_message = "deadline_margin_ms must be a whole number between 1000 and 600000."
  }
}

variable "retry_budget_seconds" {
  description = "Worker: how long transient delivery failures (5xx, timeouts, an unreadable store) are retried, with growing delays, before their connection ids go to the dead-letter queue."
  type        = number
  default     = 900

  validation {
    condition     = var.retry_budget_seconds >= 60 && var.retry_budget_seconds <= 86400 && floor(var.retry_budget_seconds) == var.retry_budget_seconds
    error_message = "retry_budget_seconds must be a whole number between 60 and 86400."
  }
}

variable "delivery_mode" {
  description = "Worker: frame sent to room members. envelope = {\"type\":\"message\",\"id\",\"room\",\"from\",\"sentAt\",\"data\"}; raw = data as-is (the seed's behaviour)."
  type        = string
  default     = "envelope"

  validation {
    condition     = contains(["envelope", "raw"], var.delivery_mode)
    error_message = "delivery_mode must be envelope or raw."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the worker's EMF metrics (Delivered, Stale, Failed, FanoutLatencyMs, ...), dimensions Workspace and Function."
  type        = string
  default     = "WsFanout"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1-255 characters of letters, digits and . _ / # : - and must not start with AWS/."
  }
}

variable "management_endpoint_override" {
  description = "Worker: API Gateway management endpoint to post to. null = https://<api_id>.execute-api.<region>.amazonaws.com/<stage>; set it when clients connect through a custom domain."
  type        = string
  default     = null

  validation {
    condition     = var.management_endpoint_override == null || can(regex("^https://[^\\s/]+(/[^\\s]*)?$", var.management_endpoint_override))
    error_message = "management_endpoint_override must be null or an https:// URL."
  }
}

################################################################################
# Fan-out queue and worker event source
################################################################################

variable "ordering" {
  description = "Order of a room's messages. \"none\" (the default): a standard queue; jobs run side by side, so two messages to a room may reach its members in either order. \"per_room\": the fan-out queue (and its dead-letter queue) is an SQS FIFO queue whose message groups are the rooms, so a room's messages are fanned out one after another in the order sendmessage accepted them (docs/architecture.md, \"Per-room order\"). With per_room rooms are never split (room_split_ways = 1), worker_batch_size is at most 10, there is no batching window, and ordered_max_receive_count replaces max_receive_count. Changing it replaces both queues: drain them first (docs/deploy.md, \"Per-room order\")."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "per_room"], var.ordering)
    error_message = "ordering must be \"none\" or \"per_room\"."
  }
}

variable "max_receive_count" {
  description = "Receives of a fan-out job before SQS parks it in the dead-letter queue. The worker makes a failed job visible again after a growing delay (about 2^receives seconds), so 11 receives span roughly 15 to 25 minutes: longer than the retry budget."
  type        = number
  default     = 11

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "ordered_max_receive_count" {
  description = "Receives of a fan-out job before SQS parks it in the dead-letter queue when ordering = \"per_room\" (max_receive_count is the standard queue's). null (the default): worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10), 250 with the defaults. Why: a FIFO job keeps its SQS message until it is done, so it is received once per worker invocation that holds it, up to retry_budget_seconds / worker_timeout_seconds + about 10 growing retry waits when a member keeps failing for the whole budget; and SQS hands the worker up to worker_batch_size messages of a room at once, so the messages behind a held one are received with it (and handed back unrun) each time: one waiting behind held ones collects up to worker_batch_size times as many receives before its own turn ends. A room bigger than one invocation adds a receive per invocation it takes: raise it explicitly for those. An explicit value is a whole number from 10 to 1000, at least that need; a need above 1000 (SQS's maximum) is refused: lower worker_batch_size or retry_budget_seconds, or raise worker_timeout_seconds."
  type        = number
  default     = null

  validation {
    condition     = var.ordered_max_receive_count == null ? true : (var.ordered_max_receive_count >= 10 && var.ordered_max_receive_count <= 1000 && floor(var.ordered_max_receive_count) == var.ordered_max_receive_count)
    error_message = "ordered_max_receive_count must be null (computed) or a whole number between 10 and 1000."
  }

  # Fewer receives and SQS would park (without a reason) jobs that are held, or wait behind a held
  # one, before the retry budget ends. The need is local.ordered_receives_needed (queue.tf),
  # spelled out here because .ci/terraform_render copies variable blocks without the locals they
  # would reach (tests/terraform_invariants/checks/ordering.rs pins the two to each other). null
  # takes the need, up to SQS's maximum of 1000.
  validation {
    condition     = var.ordering != "per_room" || (var.ordered_max_receive_count == null ? var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10) <= 1000 : var.ordered_max_receive_count >= var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10))
    error_message = var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10) > 1000 ? "With ordering = \"per_room\" a job can be received worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10) = ${var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10)} times before its turn ends (once per invocation that holds it or a message of its room before it), more than SQS's maximum maxReceiveCount of 1000: lower worker_batch_size or retry_budget_seconds, or raise worker_timeout_seconds." : "With ordering = \"per_room\" a job is received once per worker invocation that holds it or a message of its room before it in a batch, so ordered_max_receive_count must be at least worker_batch_size * (ceil(retry_budget_seconds / worker_timeout_seconds) + 10) = ${var.worker_batch_size * (ceil(var.retry_budget_seconds / var.worker_timeout_seconds) + 10)}; raise it, or leave it null (computed)."
  }
}

variable "fanout_message_retention_seconds" {
  description = "Retention of jobs in the fan-out queue, in seconds (the dead-letter queue always keeps 14 days). SQS deletes a job past it without dead-lettering it, so the plan refuses less than a job can take to reach the dead-letter queue: (900, or 0 with per_room) + receives x max(6 x worker_timeout_seconds, worker_batching_window_seconds + worker_timeout_seconds + 900), 11460 with the defaults (local.fanout_retention_needed, queue.tf; docs/deploy.md)."
  type        = number
  default     = 345600

  validation {
    condition     = var.fanout_message_retention_seconds >= 60 && var.fanout_message_retention_seconds <= 1209600
    error_message = "fanout_message_retention_seconds must be between 60 and 1209600."
  }
}

variable "worker_batch_size" {
  description = "Jobs per worker invocation (event source mapping batch size). Above 10 needs worker_batching_window_seconds >= 1, and is refused with ordering = \"per_room\" (a FIFO event source takes at most 10)."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_batch_size >= 1 && var.worker_batch_size <= 10000
    error_message = "worker_batch_size must be between 1 and 10000."
  }

  validation {
    condition     = var.ordering != "per_room" || var.worker_batch_size <= 10
    error_message = "ordering = \"per_room\" reads a FIFO queue, and Lambda's SQS event source takes at most 10 messages a batch from a FIFO queue; set worker_batch_size to 10 or less."
  }
}

variable "worker_batching_window_seconds" {
  description = "Longest wait to fill a batch before invoking the worker, in seconds (0 = invoke as soon as jobs arrive). Must stay 0 with ordering = \"per_room\": Lambda has no batching window for FIFO queues."
  type        = number
  default     = 0

  validation {
    condition     = var.worker_batching_window_seconds >= 0 && var.worker_batching_window_seconds <= 300
    error_message = "worker_batching_window_seconds must be between 0 and 300."
  }

  validation {
    condition     = var.ordering != "per_room" || var.worker_batching_window_seconds == 0
    error_message = "ordering = \"per_room\" reads a FIFO queue, and Lambda's SQS event source has no batching window for FIFO queues; leave worker_batching_window_seconds at 0."
  }
}

variable "worker_maximum_concurrency" {
  description = "Most concurrent worker invocations the SQS event source starts (scaling_config.maximum_concurrency). Together with fanout_concurrency it bounds the PostToConnection rate."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_maximum_concurrency >= 2 && var.worker_maximum_concurrency <= 1000
    error_message = "worker_maximum_concurrency must be between 2 and 1000."
  }
}

variable "room_split_ways" {
  description = "Worker: a room bigger than one page of the room index (about 28,000 members) is split into this many ranges of connection ids, each a job that a worker of its own takes; 1 never splits. null: 2, or 1 with ordering = \"per_room\" (the parts of a split room would deliver out of order). Sizing rule: docs/architecture.md (\"Huge rooms\")."
  type        = number
  default     = null

  # A conditional rather than ||: Terraform before 1.12 evaluates both sides, and null >= 1 fails.
  validation {
    condition     = var.room_split_ways == null ? true : var.room_split_ways >= 1 && var.room_split_ways <= 256 && floor(var.room_split_ways) == var.room_split_ways
    error_message = "room_split_ways must be null or a whole number between 1 and 256."
  }

  validation {
    condition     = var.ordering != "per_room" || var.room_split_ways == null || var.room_split_ways == 1
    error_message = "ordering = \"per_room\" runs each room's message as one job in order; set room_split_ways = 1"
  }
}

variable "account_post_rate" {
  description = "The account's API Gateway management API rate in requests per second in this region (10,000 unless AWS raised it). The parts of a split room start paced at their share of it, not with a burst each."
  type        = number
  default     = 10000

  validation {
    condition     = var.account_post_rate >= 1 && var.account_post_rate <= 1000000 && floor(var.account_post_rate) == var.account_post_rate
    error_message = "account_post_rate must be a whole number between 1 and 1000000."
  }
}

################################################################################
# Connections table
################################################################################

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery on the connections table."
  type        = bool
  default     = true
}

variable "table_deletion_protection" {
  description = "Enable deletion protection on the connections table (turn it off before terraform destroy)."
  type        = bool
  default     = false
}

################################################################################
# API Gateway
################################################################################

variable "throttling_burst_limit" {
  description = "Stage default throttling: burst of requests (messages and connects) across the stage."
  type        = number
  default     = 500

  validation {
    condition     = var.throttling_burst_limit >= 0 && floor(var.throttling_burst_limit) == var.throttling_burst_limit
    error_message = "throttling_burst_limit must be a non-negative integer."
  }
}

variable "throttling_rate_limit" {
  description = "Stage default throttling: steady-state requests per second across the stage."
  type        = number
  default     = 1000

  validation {
    condition     = var.throttling_rate_limit >= 0
    error_message = "throttling_rate_limit must be non-negative."
  }
}

variable "account_connection_rate" {
  description = "The account's API Gateway WebSocket quota of new connections a second in this region (500 unless AWS raised it), shared by every WebSocket API of the account there. connect_throttling_rate_limit must stay below it."
  type        = number
  default     = 500

  validation {
    condition     = var.account_connection_rate >= 1 && var.account_connection_rate <= 1000000 && floor(var.account_connection_rate) == var.account_connection_rate
    error_message = "account_connection_rate must be a whole number between 1 and 1000000."
  }
}

variable "connect_throttling_rate_limit" {
  description = "Throttling of the $connect route: steady-state new connections a second (each runs the authorizer and connect functions). Below account_connection_rate, so a flood on this stack gets 429s from its own stage before it takes the account's quota from every other WebSocket API in the region; a reconnect storm of N clients takes at least N / this seconds."
  type        = number
  default     = 250

  validation {
    condition     = var.connect_throttling_rate_limit >= 1 && var.connect_throttling_rate_limit < var.account_connection_rate
    error_message = "connect_throttling_rate_limit must be at least 1 and below account_connection_rate (the account's new-connection quota in the region, 500 by default): at or above it, a $connect flood takes the quota from the account's other WebSocket APIs before this stage throttles it."
  }
}

variable "connect_throttling_burst_limit" {
  description = "Throttling of the $connect route: burst of new connections, at most account_connection_rate."
  type        = number
  default     = 250

  validation {
    condition     = var.connect_throttling_burst_limit >= 1 && var.connect_throttling_burst_limit <= var.account_connection_rate && floor(var.connect_throttling_burst_limit) == var.connect_throttling_burst_limit
    error_message = "connect_throttling_burst_limit must be a whole number from 1 to account_connection_rate (500 by default)."
  }
}

variable "sendmessage_throttling_burst_limit" {
  description = "Throttling of the sendmessage route: burst (each message becomes a fan-out job)."
  type        = number
  default     = 100

  validation {
    condition     = var.sendmessage_throttling_burst_limit >= 0 && floor(var.sendmessage_throttling_burst_limit) == var.sendmessage_throttling_burst_limit
    error_message = "sendmessage_throttling_burst_limit must be a non-negative integer."
  }
}

variable "sendmessage_throttling_rate_limit" {
  description = "Throttling of the sendmessage route: steady-state messages per second."
  type        = number
  default     = 50

  validation {
    condition     = var.sendmessage_throttling_rate_limit >= 0
    error_message = "sendmessage_throttling_rate_limit must be non-negative."
  }
}

variable "recover_throttling_rate_limit" {
  description = "Throttling of the recover route: steady-state recoveries per second (each posts up to history_size messages). A reconnect storm above it gets 429s and the reference client asks again."
  type        = number
  default     = 100

  validation {
    condition     = var.recover_throttling_rate_limit >= 0
    error_message = "recover_throttling_rate_limit must be non-negative."
  }
}

variable "recover_throttling_burst_limit" {
  description = "Throttling of the recover route: burst of recoveries."
  type        = number
  default     = 200

  validation {
    condition     = var.recover_throttling_burst_limit >= 0
    error_message = "recover_throttling_burst_limit must be non-negative."
  }
}

variable "publish_throttling_rate_limit" {
  description = "Throttling of the publish HTTP API (POST /publish, for backends): steady-state publishes per second. Each becomes a fan-out job of up to a whole room, like a sendmessage; callers above it get 429 and retry."
  type        = number
  default     = 50

  validation {
    condition     = var.publish_throttling_rate_limit >= 0
    error_message = "publish_throttling_rate_limit must be non-negative."
  }
}

variable "publish_throttling_burst_limit" {
  description = "Throttling of the publish HTTP API: burst of publishes."
  type        = number
  default     = 100

  validation {
    condition     = var.publish_throttling_burst_limit >= 0 && floor(var.publish_throttling_burst_limit) == var.publish_throttling_burst_limit
    error_message = "publish_throttling_burst_limit must be a non-negative integer."
  }
}

variable "api_execution_logging_level" {
  description = "API Gateway execution logging level (OFF, ERROR or INFO); logs go to /aws/apigateway/<api_id>/<stage>. ERROR and INFO need the region's API Gateway logging role, set up once per account and region by terraform/account (docs/deploy.md)."
  type        = string
  default     = "OFF"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.api_execution_logging_level)
    error_message = "api_execution_logging_level must be OFF, ERROR or INFO."
  }
}

variable "detailed_metrics_enabled" {
  description = "Per-route API Gateway metrics (dimension Route); billed as custom metrics."
  type        = bool
  default     = false
}

################################################################################
# Monitoring
################################################################################

variable "alarm_email" {
  description = "Email address notified by the alarms through an SNS topic. null = no topic and no subscription (the alarms still show on the dashboard)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be null or an email address."
  }
}

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the oldest job in the fan-out queue is older than this, in seconds (fan-out is falling behind)."
  type        = number
  default     = 120

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 1
    error_message = "alarm_oldest_message_age_seconds must be at least 1."
  }
}

variable "alarm_worker_errors_threshold" {
  description = "Alarm when the worker fails more invocations than this in a minute, for alarm_evaluation_periods minutes."
  type        = number
  default     = 0

  validation {
    condition     = var.alarm_worker_errors_threshold >= 0
    error_message = "alarm_worker_errors_threshold must be non-negative."
  }
}

variable "alarm_evaluation_periods" {
  description = "One-minute periods an alarm condition must hold before the queue-age, worker-error and throttle alarms fire."
  type        = number
  default     = 3

  validation {
    condition     = var.alarm_evaluation_periods >= 1 && var.alarm_evaluation_periods <= 60
    error_message = "alarm_evaluation_periods must be between 1 and 60."
  }
}

variable "alarm_delivery_failure_percent" {
  description = "Alarm when more than this percentage of the deliveries in five minutes were refused by the management API (Failed / (Delivered + Failed))."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_delivery_failure_percent >= 0 && var.alarm_delivery_failure_percent <= 100
    error_message = "alarm_delivery_failure_percent must be between 0 and 100."
  }
}

variable "producer_role_arns" {
  description = "IAM role ARNs besides sendmessage, publish and the worker that may send jobs to the fan-out queue: operators who redrive the dead-letter queue, and producers that write jobs directly (those have no offset and cannot be recovered: backends should publish through POST /publish with the publishers policy, output publish_policy_arn). Everyone else is denied sqs:SendMessage by the queue policy. A producer's `sender` is trusted as given (docs/contracts.md). With kms_key_arn set, each of these roles needs kms:GenerateDataKey and kms:Decrypt on the key (the queues are encrypted with it)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.producer_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "producer_role_arns must be IAM role ARNs (arn:aws:iam::123456789012:role/NAME)."
  }

  # The queue policy compares them with ArnNotEquals, where * and ? are wildcards: role/* would
  # let every role of the account send jobs.
  validation {
    condition     = alltrue([for arn in var.producer_role_arns : !strcontains(arn, "*") && !strcontains(arn, "?")])
    error_message = "producer_role_arns must name roles exactly: * and ? are wildcards in the queue policy's ARN condition, and would let every matching role send jobs."
  }
}

variable "rate_limit_per_second" {
  description = "Messages a second one connection may send, sustained (sendmessage answers a faster sender `rate_limited`; the room's other members are not slowed). Kept on the connection's item, so it holds across every sendmessage instance. 0 turns the limit off (and its write per message)."
  type        = number
  default     = 10

  validation {
    condition     = var.rate_limit_per_second >= 0 && var.rate_limit_per_second <= 100000 && floor(var.rate_limit_per_second) == var.rate_limit_per_second
    error_message = "rate_limit_per_second must be a whole number from 0 to 100000."
  }
}

variable "rate_limit_burst" {
  description = "Messages one connection may send at once before rate_limit_per_second applies."
  type        = number
  default     = 20

  validation {
    condition     = var.rate_limit_burst >= 1 && var.rate_limit_burst <= 100000 && floor(var.rate_limit_burst) == var.rate_limit_burst
    error_message = "rate_limit_burst must be a whole number from 1 to 100000."
  }
}

################################################################################
# Authentication
################################################################################

variable "auth_mode" {
  description = "\"jwt\" (the default): every connection presents a JWT whose `rooms` claim names the rooms it may join, verified by the $connect authorizer (docs/security.md). \"none\": anyone who knows a room's name may join it, read it and post to it."
  type        = string
  default     = "jwt"

  validation {
    condition     = contains(["jwt", "none"], var.auth_mode)
    error_message = "auth_mode must be \"jwt\" or \"none\"."
  }
}

variable "connect_token_source" {
  description = "Where clients put their JWT at $connect, which the authorizer's identity source requires: \"query\" (the default; `?token=`, as browsers must, and as every client of this project does) or \"header\" (`Authorization: Bearer`): API Gateway answers 401 to a handshake without it before invoking the authorizer, so a token-less flood costs no Lambda. \"either\": no identity source, both are accepted, and every handshake invokes the authorizer."
  type        = string
  default     = "query"

  validation {
    condition     = contains(["query", "header", "either"], var.connect_token_source)
    error_message = "connect_token_source must be \"query\", \"header\" or \"either\"."
  }
}

variable "jwt_issuer" {
  description = "The `iss` every token must carry: the OIDC issuer URL with jwks_url (for Cognito, https://cognito-idp.<region>.amazonaws.com/<pool-id>), or the name your token service signs with for HS256. null: \"<project>-<workspace>\"."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_issuer == null || try(length(var.jwt_issuer) > 0, false)
    error_message = "jwt_issuer must be null or a non-empty string."
  }
}

variable "jwt_audience" {
  description = "The `aud` every token must carry (for Cognito ID tokens, the app client id)."
  type        = string
  default     = "wsfanout"

  validation {
    condition     = length(var.jwt_audience) > 0
    error_message = "jwt_audience must not be empty."
  }
}

variable "jwks_url" {
  description = "The issuer's JWKS (https): tokens are RS256 or ES256, verified against its keys (for Cognito, <issuer>/.well-known/jwks.json). null: HS256 with the secret in jwt_secret_arn (or one this stack creates). The authorizer then needs outbound HTTPS."
  type        = string
  default     = null

  validation {
    condition     = var.jwks_url == null || (can(regex("^https://[^\\s]+$", var.jwks_url)) && var.jwt_secret_arn == null)
    error_message = "jwks_url must be an https URL, and not set together with jwt_secret_arn."
  }
}

variable "jwt_secret_arn" {
  description = "A Secrets Manager secret holding the HS256 signing secret (32 bytes or more) shared with your token service. null (and no jwks_url): the stack creates an empty secret to put the value in."
  type        = string
  default     = null

  validation {
    condition     = var.jwt_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.jwt_secret_arn))
    error_message = "jwt_secret_arn must be null or a Secrets Manager secret ARN."
  }
}
