output "websocket_url" {
  description = "wss:// URL clients connect to (append ?room=NAME to join a room; default lobby)."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "publish_url" {
  description = "https:// URL backends POST messages to ({\"room\":R or \"all\":true,\"data\":...,\"idempotencyKey\":K}), signed with SigV4 (service execute-api) as a role with publish_policy_arn."
  # A $default stage's invoke URL is the API's root, with a trailing slash.
  value = "${trimsuffix(aws_apigatewayv2_stage.publish.invoke_url, "/")}/publish"
}

output "publish_policy_arn" {
  description = "ARN of the IAM policy that allows calling publish_url (execute-api:Invoke on POST /publish only): attach it to the roles of the backends that publish."
  value       = aws_iam_policy.publishers.arn
}

output "publish_api_id" {
  description = "Id of the publish HTTP API (the ApiId dimension of its metrics)."
  value       = aws_apigatewayv2_api.publish.id
}

output "management_endpoint" {
  description = "API Gateway management endpoint the worker posts to (https://{api_id}.execute-api.{region}.amazonaws.com/{stage}, or management_endpoint_override)."
  value       = local.management_endpoint
}

output "api_id" {
  description = "Id of the WebSocket API (the ApiId dimension of its metrics)."
  value       = aws_apigatewayv2_api.this.id
}

output "stage_name" {
  description = "Name of the API Gateway stage (the workspace name)."
  value       = aws_apigatewayv2_stage.this.name
}

output "fanout_queue_url" {
  description = "URL of the fan-out job queue (other producers may publish v1 jobs here)."
  value       = aws_sqs_queue.fanout.url
}

output "fanout_queue_arn" {
  description = "ARN of the fan-out job queue."
  value       = aws_sqs_queue.fanout.arn
}

output "dead_letter_queue_url" {
  description = "URL of the fan-out dead-letter queue."
  value       = aws_sqs_queue.fanout_dlq.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the fan-out dead-letter queue (the --source-arn of aws sqs start-message-move-task to redrive)."
  value       = aws_sqs_queue.fanout_dlq.arn
}

output "ordering" {
  description = "Order of a room's messages: none, or per_room (the fan-out queue and its dead-letter queue are FIFO, each room a message group)."
  value       = var.ordering
}

output "connections_table_name" {
  description = "Name of the DynamoDB connections table."
  value       = aws_dynamodb_table.connections.name
}

output "function_names" {
  description = "Lambda function name of each binary (connect, disconnect, sendmessage, recover, default, worker, publish, and authorizer with auth_mode = \"jwt\")."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "dashboard_url" {
  description = "CloudWatch console URL of the operators' dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic the alarms notify, or null when alarm_email is null."
  value       = one(aws_sns_topic.alarms[*].arn)
}

output "region" {
  description = "AWS region of the stack (the ops CLI's default region when it reads these outputs)."
  value       = local.region
}

output "jwt_issuer" {
  description = "The `iss` the $connect authorizer requires of tokens (jwt_issuer, default \"<project>-<workspace>\"); null with auth_mode = \"none\"."
  value       = local.auth_enabled ? local.jwt_issuer : null
}

output "jwt_audience" {
  description = "The `aud` the $connect authorizer requires of tokens (jwt_audience); null with auth_mode = \"none\"."
  value       = local.auth_enabled ? var.jwt_audience : null
}

output "jwt_secret_arn" {
  description = "ARN of the Secrets Manager secret whose value signs HS256 tokens (the one this stack creates, or jwt_secret_arn); null with jwks_url or auth_mode = \"none\"."
  value       = local.jwt_uses_secret ? local.jwt_secret_arn : null
}
