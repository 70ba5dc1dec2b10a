################################################################################
# Operators' dashboard, alarms and (optional) email notifications
################################################################################

locals {
  worker_function_name = aws_lambda_function.this["worker"].function_name
  api_dimensions       = ["ApiId", aws_apigatewayv2_api.this.id, "Stage", local.stage_name]
  # The worker's EMF metrics carry exactly these dimensions.
  emf_dimensions = ["Workspace", terraform.workspace, "Function", local.worker_function_name]
  # sendmessage's (Accepted, Refused), and Refused by the error code the sender got.
  send_dimensions = {
    Workspace = terraform.workspace
    Function  = aws_lambda_function.this["sendmessage"].function_name
  }
  worker_dimensions = {
    Workspace = terraform.workspace
    Function  = local.worker_function_name
  }
  recover_dimensions = {
    Workspace = terraform.workspace
    Function  = aws_lambda_function.this["recover"].function_name
  }
  recover_emf_dimensions = ["Workspace", terraform.workspace, "Function", aws_lambda_function.this["recover"].function_name]
  # publish writes sendmessage's metrics (Accepted, Refused) under its own Function.
  publish_function_name = aws_lambda_function.this["publish"].function_name
  publish_dimensions = {
    Workspace = terraform.workspace
    Function  = local.publish_function_name
  }
  publish_emf_dimensions = ["Workspace", terraform.workspace, "Function", local.publish_function_name]
  publish_api_dimensions = ["ApiId", aws_apigatewayv2_api.publish.id, "Stage", aws_apigatewayv2_stage.publish.name]

  # Failures no Lambda or API Gateway error metric shows: each alarms when its count over
  # `period` seconds is above `threshold`. Runbooks: docs/operations.md, by alarm name.
  silent_failure_alarms = {
    "jobs-failed" = {
      description = "Fan-out jobs failed and were reported back to SQS (FailedJobs): the progress table or the queue failed, or a run outlived its lease. They come back; max_receive_count failures park them."
      namespace   = var.metrics_namespace
      metric      = "FailedJobs"
      dimensions  = local.worker_dimensions
      period      = 300
      threshold   = 0
    }
    "jobs-dead-lettered" = {
      description = "The worker parked jobs in the dead-letter queue (DeadLettered): invalid jobs, or deliveries given up after the retry budget. Each DLQ message says why in its Reason attribute."
      namespace   = var.metrics_namespace
      metric      = "DeadLettered"
      dimensions  = local.worker_dimensions
      period      = 300
      threshold   = 0
    }
    "deliveries-abandoned" = {
      description = "Deliveries were given up after retry_budget_seconds (Abandoned): those members did not get the message. Their ids are in the dead-letter queue; redrive once the cause is fixed."
      namespace   = var.metrics_namespace
      metric      = "Abandoned"
      dimensions  = local.worker_dimensions
      period      = 300
      threshold   = 0
    }
    "handoffs-failed" = {
      description = "The worker could not hand the rest of a job back to the queue in time (HandoffsFailed): SQS redelivers the job and its progress record resumes it, but until then the rest of the room waits."
      namespace   = var.metrics_namespace
      metric      = "HandoffsFailed"
      dimensions  = local.worker_dimensions
      period      = 300
      threshold   = 0
    }
    "management-forbidden" = {
      description = "The API Gateway management API answers 403 to the worker (Forbidden): no one receives messages. Check the worker role's execute-api:ManageConnections and MANAGEMENT_ENDPOINT."
      namespace   = var.metrics_namespace
      metric      = "Forbidden"
      dimensions  = local.worker_dimensions
      period      = 60
      threshold   = 0
    }
    "sendmessage-unavailable" = {
      description = "sendmessage refused messages because the connections table, the history table or the fan-out queue failed (Refused, Code unavailable): senders get an error frame over HTTP 200, so no Lambda or API Gateway error shows it."
      namespace   = var.metrics_namespace
      metric      = "Refused"
      dimensions  = merge(local.send_dimensions, { Code = "unavailable" })
      period      = 60
      threshold   = 0
    }
    "publish-unavailable" = {
      description = "publish refused backends' messages because the history table or the fan-out queue failed (Refused, Code unavailable): the backends got 503 and must publish again (with the same idempotencyKey, it publishes once)."
      namespace   = var.metrics_namespace
      metric      = "Refused"
      dimensions  = merge(local.publish_dimensions, { Code = "unavailable" })
      period      = 60
      threshold   = 0
    }
    "publish-errors" = {
      description = "The publish function failed whole invocations (crash, timeout, out of memory; Lambda Errors): backends got 500 or 503 from the publish API, with no answer of the function's own."
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      dimensions  = { FunctionName = local.publish_function_name }
      period      = 60
      threshold   = 0
    }
    "recoveries-failed" = {
      description = "Reconnecting clients asked to recover and could not be sent what they missed (RecoveriesFailed): the history table or the management API failed past the recover function's retries. The clients got an unavailable error and ask again."
      namespace   = var.metrics_namespace
      metric      = "RecoveriesFailed"
      dimensions  = local.recover_dimensions
      period      = 300
      threshold   = 0
    }
    "recoveries-incomplete" = {
      description = "More than ${var.alarm_recoveries_incomplete} recoveries in 5 minutes were answered complete = false (RecoveriesIncomplete): clients were away longer than history_size or history_ttl_seconds reach, or rooms' sequences restarted, and reloaded their state."
      namespace   = var.metrics_namespace
      metric      = "RecoveriesIncomplete"
      dimensions  = local.recover_dimensions
      period      = 300
      threshold   = var.alarm_recoveries_incomplete
    }
    "api-integration-errors" = {
      description = "API Gateway could not invoke a route's Lambda or got a bad answer from it (IntegrationError): clients get internal server errors."
      namespace   = "AWS/ApiGateway"
      metric      = "IntegrationError"
      dimensions  = { ApiId = aws_apigatewayv2_api.this.id, Stage = local.stage_name }
      period      = 60
      threshold   = 0
    }
    "api-execution-errors" = {
      description = "API Gateway failed requests itself (ExecutionError): clients get internal server errors."
      namespace   = "AWS/ApiGateway"
      metric      = "ExecutionError"
      dimensions  = { ApiId = aws_apigatewayv2_api.this.id, Stage = local.stage_name }
      period      = 60
      threshold   = 0
    }
  }

  dashboard_name = "${local.name_prefix}-fanout"
}

################################################################################
# Alarms
################################################################################

# Fan-out is falling behind: jobs wait in the queue. An idle queue reports no
# data, which means no backlog: notBreaching.
resource "aws_cloudwatch_metric_alarm" "fanout_oldest_message_age" {
  alarm_name        = "${local.name_prefix}-fanout-oldest-message-age"
  alarm_description = "The oldest fan-out job has waited more than ${var.alarm_oldest_message_age_seconds} s: the worker is failing, throttled or too slow (see the dashboard ${local.dashboard_name})."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.fanout.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_oldest_message_age_seconds
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# A job failed max_receive_count times and is parked. Missing data must not clear
# it: a parked job stays a problem until it is redriven or purged, and both make
# the queue report again (0 returns the alarm to OK): ignore keeps the last state.
resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  alarm_name        = "${local.name_prefix}-fanout-dlq-not-empty"
  alarm_description = "Fan-out jobs are in the dead-letter queue ${aws_sqs_queue.fanout_dlq.name}: inspect them, fix the cause, then redrive (aws sqs start-message-move-task --source-arn ${aws_sqs_queue.fanout_dlq.arn})."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.fanout_dlq.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "ignore"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# Lambda reports no Errors datapoint for a minute without invocations: that is
# not an error, so notBreaching.
resource "aws_cloudwatch_metric_alarm" "worker_errors" {
  alarm_name        = "${local.name_prefix}-worker-errors"
  alarm_description = "The fan-out worker failed whole invocations (crash, timeout, out of memory). Per-job failures are reported as batch item failures and show as retries and DLQ depth instead."

  namespace   = "AWS/Lambda"
  metric_name = "Errors"
  dimensions = {
    FunctionName = local.worker_function_name
  }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_worker_errors_threshold
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# Throttles mean the account's concurrency is exhausted: jobs wait. No datapoint
# means no throttle: notBreaching.
resource "aws_cloudwatch_metric_alarm" "worker_throttles" {
  alarm_name        = "${local.name_prefix}-worker-throttles"
  alarm_description = "The fan-out worker is throttled: the account or region Lambda concurrency is exhausted (lower worker_maximum_concurrency or raise the quota)."

  namespace   = "AWS/Lambda"
  metric_name = "Throttles"
  dimensions = {
    FunctionName = local.worker_function_name
  }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_periods
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# No datapoint means nothing happened: notBreaching.
resource "aws_cloudwatch_metric_alarm" "silent_failure" {
  for_each = local.silent_failure_alarms

  alarm_name        = "${local.name_prefix}-${each.key}"
  alarm_description = "${each.value.description} Runbook: docs/operations.md#${each.key}"

  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = "Sum"
  period              = each.value.period
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# Members the management API refused for good (a 4xx other than 410, 429 and 403), as a share
# of the posts the worker settled. A job that delivers to 99 members and fails 1 succeeds: this
# is where that shows.
resource "aws_cloudwatch_metric_alarm" "delivery_failure_ratio" {
  alarm_name          = "${local.name_prefix}-delivery-failure-ratio"
  alarm_description   = "More than ${var.alarm_delivery_failure_percent}% of deliveries were refused by the management API (Failed / (Delivered + Failed)). Runbook: docs/operations.md#delivery-failure-ratio"
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_delivery_failure_percent
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "ratio"
    expression  = "IF(delivered + failed > 0, 100 * failed / (delivered + failed), 0)"
    label       = "Failed deliveries (%)"
    return_data = true
  }
  metric_query {
    id = "delivered"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Delivered"
      dimensions  = local.worker_dimensions
      stat        = "Sum"
      period      = 300
    }
  }
  metric_query {
    id = "failed"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Failed"
      dimensions  = local.worker_dimensions
      stat        = "Sum"
      period      = 300
    }
  }

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

################################################################################
# Notifications (only with var.alarm_email)
################################################################################

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed aws/sns key; the topic carries only alarm state changes. Set var.kms_key_arn (a key whose policy allows cloudwatch.amazonaws.com) to encrypt it.
  count = var.alarm_email == null ? 0 : 1

  name              = "${local.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

################################################################################
# Dashboard
################################################################################

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.dashboard_name

  dashboard_body = jsonencode({
    start          = "-PT3H"
    periodOverride = "inherit"
    widgets = [
      {
        type   = "text"
        x      = 0
        y      = 0
        width  = 12
        height = 4
        properties = {
          markdown = join("\n", [
            "## WebSocket fan-out: ${terraform.workspace}",
            "sendmessage enqueues a job on **${aws_sqs_queue.fanout.name}**; the worker **${local.worker_function_name}** posts it to every connection of the room.",
            "Backlog = queue depth and age rising. Parked jobs = DLQ depth > 0 (redrive with `aws sqs start-message-move-task --source-arn ${aws_sqs_queue.fanout_dlq.arn}`).",
            "Delivered / Stale (410, connection deleted) / Failed come from the worker's EMF metrics in **${var.metrics_namespace}**.",
            "Backends publish through **POST /publish** (the publish HTTP API, IAM-authorized): the bottom row.",
          ])
        }
      },
      {
        type   = "alarm"
        x      = 12
        y      = 0
        width  = 12
        height = 4
        properties = {
          title = "Alarms"
          alarms = concat(
            [
              aws_cloudwatch_metric_alarm.fanout_oldest_message_age.arn,
              aws_cloudwatch_metric_alarm.dlq_not_empty.arn,
              aws_cloudwatch_metric_alarm.worker_errors.arn,
              aws_cloudwatch_metric_alarm.worker_throttles.arn,
              aws_cloudwatch_metric_alarm.delivery_failure_ratio.arn,
            ],
            [for key in keys(local.silent_failure_alarms) : aws_cloudwatch_metric_alarm.silent_failure[key].arn],
          )
        }
      },

      # Queue
      {
        type   = "metric"
        x      = 0
        y      = 4
        width  = 8
        height = 6
        properties = {
          title  = "Fan-out queue depth"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Maximum"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.fanout.name, { label = "Waiting" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", aws_sqs_queue.fanout.name, { label = "In flight" }],
            ["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.fanout.name, { label = "Enqueued / min", stat = "Sum" }],
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 4
        width  = 8
        height = 6
        properties = {
          title  = "Age of oldest job (s)"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Maximum"
          metrics = [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.fanout.name, { label = "Oldest job age" }],
          ]
          annotations = {
            horizontal = [{ label = "Alarm", value = var.alarm_oldest_message_age_seconds }]
          }
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 4
        width  = 8
        height = 6
        properties = {
          title  = "Dead-letter queue depth"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Maximum"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.fanout_dlq.name, { label = "Parked jobs" }],
          ]
          annotations = {
            horizontal = [{ label = "Alarm", value = 0 }]
          }
          yAxis = { left = { min = 0 } }
        }
      },

      # Worker
      {
        type   = "metric"
        x      = 0
        y      = 10
        width  = 8
        height = 6
        properties = {
          title  = "Worker invocations, errors, throttles"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", local.worker_function_name, { label = "Invocations" }],
            ["AWS/Lambda", "Errors", "FunctionName", local.worker_function_name, { label = "Errors", color = "#d62728" }],
            ["AWS/Lambda", "Throttles", "FunctionName", local.worker_function_name, { label = "Throttles", color = "#ff7f0e" }],
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 10
        width  = 8
        height = 6
        properties = {
          title  = "Worker duration (ms)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/Lambda", "Duration", "FunctionName", local.worker_function_name, { label = "p50", stat = "p50" }],
            ["AWS/Lambda", "Duration", "FunctionName", local.worker_function_name, { label = "p99", stat = "p99" }],
            ["AWS/Lambda", "Duration", "FunctionName", local.worker_function_name, { label = "Max", stat = "Maximum" }],
          ]
          annotations = {
            horizontal = [{ label = "Timeout", value = var.worker_timeout_seconds * 1000 }]
          }
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 10
        width  = 8
        height = 6
        properties = {
          title  = "Worker concurrency"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Maximum"
          metrics = [
            ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", local.worker_function_name, { label = "Concurrent executions" }],
          ]
          annotations = {
            horizontal = [{ label = "Event source maximum", value = var.worker_maximum_concurrency }]
          }
          yAxis = { left = { min = 0 } }
        }
      },

      # API Gateway
      {
        type   = "metric"
        x      = 0
        y      = 16
        width  = 8
        height = 6
        properties = {
          title  = "API: connects and messages"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat(["AWS/ApiGateway", "ConnectCount"], local.api_dimensions, [{ label = "Connects" }]),
            concat(["AWS/ApiGateway", "MessageCount"], local.api_dimensions, [{ label = "Messages (in and out)" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 16
        width  = 8
        height = 6
        properties = {
          title  = "API: errors"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat(["AWS/ApiGateway", "ClientError"], local.api_dimensions, [{ label = "ClientError (4xx before integration)" }]),
            concat(["AWS/ApiGateway", "ExecutionError"], local.api_dimensions, [{ label = "ExecutionError" }]),
            concat(["AWS/ApiGateway", "IntegrationError"], local.api_dimensions, [{ label = "IntegrationError" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 16
        width  = 8
        height = 6
        properties = {
          title  = "API functions: errors and throttles"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          # One metric array per (function, metric). Not flatten(): it is recursive, and would
          # flatten each metric array into the list too (PutDashboard: "Should be array").
          metrics = [
            for pair in setproduct(["connect", "disconnect", "sendmessage", "default", "publish"], ["Errors", "Throttles"]) :
            ["AWS/Lambda", pair[1], "FunctionName", aws_lambda_function.this[pair[0]].function_name, { label = "${pair[0]} ${lower(pair[1])}" }]
          ]
          yAxis = { left = { min = 0 } }
        }
      },

      # Worker EMF metrics
      {
        type   = "metric"
        x      = 0
        y      = 22
        width  = 12
        height = 6
        properties = {
          title  = "Deliveries"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat([var.metrics_namespace, "Delivered"], local.emf_dimensions, [{ label = "Delivered", color = "#2ca02c" }]),
            concat([var.metrics_namespace, "Stale"], local.emf_dimensions, [{ label = "Stale (410, deleted)", color = "#7f7f7f" }]),
            concat([var.metrics_namespace, "Failed"], local.emf_dimensions, [{ label = "Failed", color = "#d62728" }]),
            concat([var.metrics_namespace, "Abandoned"], local.emf_dimensions, [{ label = "Abandoned (retry budget spent)", color = "#9467bd" }]),
            concat([var.metrics_namespace, "Forbidden"], local.emf_dimensions, [{ label = "Forbidden (403)", color = "#ff7f0e" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 22
        width  = 12
        height = 6
        properties = {
          title  = "Fan-out latency, sentAt to last delivery (ms)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            concat([var.metrics_namespace, "FanoutLatencyMs"], local.emf_dimensions, [{ label = "p50", stat = "p50" }]),
            concat([var.metrics_namespace, "FanoutLatencyMs"], local.emf_dimensions, [{ label = "p99", stat = "p99" }]),
            concat([var.metrics_namespace, "FanoutLatencyMs"], local.emf_dimensions, [{ label = "Max", stat = "Maximum" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },

      # Recovery
      {
        type   = "metric"
        x      = 0
        y      = 28
        width  = 12
        height = 6
        properties = {
          title  = "Recoveries"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat([var.metrics_namespace, "Recoveries"], local.recover_emf_dimensions, [{ label = "Recoveries" }]),
            concat([var.metrics_namespace, "RecoveriesIncomplete"], local.recover_emf_dimensions, [{ label = "Incomplete (clients reloaded)", color = "#ff7f0e" }]),
            concat([var.metrics_namespace, "RecoveriesFailed"], local.recover_emf_dimensions, [{ label = "Failed", color = "#d62728" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 28
        width  = 12
        height = 6
        properties = {
          title  = "Messages recovered, and messages refused unavailable (offset, history or queue)"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat([var.metrics_namespace, "RecoveredMessages"], local.recover_emf_dimensions, [{ label = "Recovered messages" }]),
            [var.metrics_namespace, "Refused", "Workspace", terraform.workspace, "Function", aws_lambda_function.this["sendmessage"].function_name, "Code", "unavailable", { label = "sendmessage refused unavailable", color = "#d62728" }],
          ]
          yAxis = { left = { min = 0 } }
        }
      },

      # Publish (backends)
      {
        type   = "metric"
        x      = 0
        y      = 34
        width  = 12
        height = 6
        properties = {
          title  = "Publish: backends' messages accepted and refused"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat([var.metrics_namespace, "Accepted"], local.publish_emf_dimensions, [{ label = "Accepted", color = "#2ca02c" }]),
            concat([var.metrics_namespace, "Refused"], local.publish_emf_dimensions, [{ label = "Refused (every code)", color = "#ff7f0e" }]),
            concat([var.metrics_namespace, "Refused"], local.publish_emf_dimensions, ["Code", "unavailable", { label = "Refused unavailable (history or queue)", color = "#d62728" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 34
        width  = 12
        height = 6
        properties = {
          title  = "Publish API: requests and errors"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            concat(["AWS/ApiGateway", "Count"], local.publish_api_dimensions, [{ label = "Requests" }]),
            concat(["AWS/ApiGateway", "4xx"], local.publish_api_dimensions, [{ label = "4xx (unsigned, not allowed, throttled, invalid)", color = "#ff7f0e" }]),
            concat(["AWS/ApiGateway", "5xx"], local.publish_api_dimensions, [{ label = "5xx (unavailable, function failed)", color = "#d62728" }]),
          ]
          yAxis = { left = { min = 0 } }
        }
      },
    ]
  })
}
