################################################################################
# API Gateway v2 WebSocket API
################################################################################

locals {
  # route key => function, and whether the function's response is sent back to
  # the sender as a frame (the ack of sendmessage, the error frame of $default).
  api_routes = {
    "$connect" = {
      function       = "connect"
      route_response = false
    }
    "$disconnect" = {
      function       = "disconnect"
      route_response = false
    }
    "sendmessage" = {
      function       = "sendmessage"
      route_response = true
    }
    # Its frames go through the management API; the route response carries only an error.
    "recover" = {
      function       = "recover"
      route_response = true
    }
    "join" = {
      function       = "rooms"
      route_response = true
    }
    "leave" = {
      function       = "rooms"
      route_response = true
    }
    "$default" = {
      function       = "default"
      route_response = true
    }
  }
}

resource "aws_apigatewayv2_api" "this" {
  name                       = "${local.name_prefix}-ws"
  description                = "WebSocket fan-out (${terraform.workspace})"
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
}

resource "aws_apigatewayv2_integration" "this" {
  for_each = local.api_routes

  api_id             = aws_apigatewayv2_api.this.id
  description        = "${each.key} -> ${local.name_prefix}-${each.value.function}"
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = aws_lambda_function.this[each.value.function].invoke_arn
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:WebSocket APIs authorize only on $connect (the JWT authorizer, auth_mode = "jwt"); the other routes run on a connection already accepted. auth_mode = "none" is an explicit choice of public rooms.
  for_each = local.api_routes

  api_id                              = aws_apigatewayv2_api.this.id
  route_key                           = each.key
  target                              = "integrations/${aws_apigatewayv2_integration.this[each.key].id}"
  authorization_type                  = each.key == "$connect" && local.auth_enabled ? "CUSTOM" : "NONE"
  authorizer_id                       = each.key == "$connect" && local.auth_enabled ? aws_apigatewayv2_authorizer.connect[0].id : null
  route_response_selection_expression = each.value.route_response ? "$default" : null
}

# Two-way routes: the Lambda proxy response body goes back to the sender.
resource "aws_apigatewayv2_route_response" "this" {
  for_each = { for key, route in local.api_routes : key => route if route.route_response }

  api_id             = aws_apigatewayv2_api.this.id
  route_id           = aws_apigatewayv2_route.this[each.key].id
  route_response_key = "$default"
}

resource "aws_lambda_permission" "api" {
  for_each = local.api_routes

  statement_id  = "AllowApiGateway-${each.value.function}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "apigateway.amazonaws.com"
  # Only this API's stage, and only this route, may invoke the function.
  source_arn = "${aws_apigatewayv2_api.this.execution_arn}/${local.stage_name}/${each.key}"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key by default; set var.kms_key_arn to use a customer-managed key.
  name              = "/aws/apigateway/${local.name_prefix}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# API Gateway writes WebSocket execution logs to /aws/apigateway/<api_id>/<stage>;
# created here so it has a retention and is destroyed with the stack.
resource "aws_cloudwatch_log_group" "api_execution" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key by default; set var.kms_key_arn to use a customer-managed key.
  name              = "/aws/apigateway/${aws_apigatewayv2_api.this.id}/${terraform.workspace}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_apigatewayv2_stage" "this" {
  #checkov:skip=CKV2_AWS_51:A stage client certificate is what API Gateway presents to HTTP backends; every integration here is a Lambda proxy, invoked through IAM (aws_lambda_permission scoped to this stage and route).
  api_id      = aws_apigatewayv2_api.this.id
  name        = terraform.workspace
  description = "Workspace ${terraform.workspace}"
  auto_deploy = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTime        = "$context.requestTime"
      requestTimeEpoch   = "$context.requestTimeEpoch"
      apiId              = "$context.apiId"
      stage              = "$context.stage"
      connectionId       = "$context.connectionId"
      connectedAt        = "$context.connectedAt"
      eventType          = "$context.eventType"
      routeKey           = "$context.routeKey"
      messageId          = "$context.messageId"
      status             = "$context.status"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      integrationStatus  = "$context.integration.status"
      integrationError   = "$context.integration.error"
      integrationLatency = "$context.integration.latency"
      errorMessage       = "$context.error.messageString"
      errorResponseType  = "$context.error.responseType"
    })
  }

  default_route_settings {
    throttling_burst_limit   = var.throttling_burst_limit
    throttling_rate_limit    = var.throttling_rate_limit
    logging_level            = var.api_execution_logging_level
    data_trace_enabled       = false
    detailed_metrics_enabled = var.detailed_metrics_enabled
  }

  # Each new connection runs the authorizer and connect functions, and the account's quota of
  # new connections is shared by every WebSocket API in the region: a limit of its own, below it.
  route_settings {
    route_key                = aws_apigatewayv2_route.this["$connect"].route_key
    throttling_burst_limit   = var.connect_throttling_burst_limit
    throttling_rate_limit    = var.connect_throttling_rate_limit
    logging_level            = var.api_execution_logging_level
    data_trace_enabled       = false
    detailed_metrics_enabled = var.detailed_metrics_enabled
  }

  # Each sendmessage becomes a fan-out job of up to a whole room: its own, lower limit.
  route_settings {
    route_key                = aws_apigatewayv2_route.this["sendmessage"].route_key
    throttling_burst_limit   = var.sendmessage_throttling_burst_limit
    throttling_rate_limit    = var.sendmessage_throttling_rate_limit
    logging_level            = var.api_execution_logging_level
    data_trace_enabled       = false
    detailed_metrics_enabled = var.detailed_metrics_enabled
  }

  # Each recover may post up to history_size messages and run up to 29 s: a limit of its own,
  # so that a flood of recoveries cannot take the account's concurrency from the worker.
  route_settings {
    route_key                = aws_apigatewayv2_route.this["recover"].route_key
    throttling_burst_limit   = var.recover_throttling_burst_limit
    throttling_rate_limit    = var.recover_throttling_rate_limit
    logging_level            = var.api_execution_logging_level
    data_trace_enabled       = false
    detailed_metrics_enabled = var.detailed_metrics_enabled
  }

  # The execution log group must exist before API Gateway creates one without a
  # retention. Logging also needs the region's logging role (terraform/account).
  depends_on = [aws_cloudwatch_log_group.api_execution]
}

################################################################################
# API Gateway v2 HTTP API: POST /publish, for backends
#
# Backends publish to a room (or to all) through the publish function, which numbers and keeps
# the message like a sendmessage and answers its id and offset. The route is IAM-authorized:
# callers sign with SigV4 (service execute-api) as a role that has the publishers policy
# (iam.tf, `terraform output publish_policy_arn`).
################################################################################

locals {
  publish_route_key = "POST /publish"
  # <execution_arn>/<stage>/<METHOD>/<path>: what execute-api:Invoke and the Lambda permission
  # name, this route of this stage only.
  publish_route_arn = "${aws_apigatewayv2_api.publish.execution_arn}/${aws_apigatewayv2_stage.publish.name}/${replace(local.publish_route_key, " /", "/")}"
}

resource "aws_apigatewayv2_api" "publish" {
  name          = "${local.name_prefix}-publish"
  description   = "WebSocket fan-out (${terraform.workspace}): POST /publish for backends, SigV4-signed"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "publish" {
  api_id                 = aws_apigatewayv2_api.publish.id
  description            = "${local.publish_route_key} -> ${local.name_prefix}-publish"
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this["publish"].invoke_arn
  payload_format_version = "2.0"
  # An HTTP API's most; the function's timeout (functions.tf) is below it.
  timeout_milliseconds = 30000
}

# Callers sign with SigV4, as a role whose IAM policies allow execute-api:Invoke on this route
# (the publishers policy): no authorizer.
resource "aws_apigatewayv2_route" "publish" {
  api_id             = aws_apigatewayv2_api.publish.id
  route_key          = local.publish_route_key
  target             = "integrations/${aws_apigatewayv2_integration.publish.id}"
  authorization_type = "AWS_IAM"
  authorizer_id      = null
}

resource "aws_lambda_permission" "publish" {
  statement_id  = "AllowApiGateway-publish"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["publish"].function_name
  principal     = "apigateway.amazonaws.com"
  # Only this API's stage, and only this route, may invoke the function.
  source_arn = local.publish_route_arn
}

resource "aws_cloudwatch_log_group" "publish_access" {
  #checkov:skip=CKV_AWS_158:Encrypted with the CloudWatch Logs service key by default; set var.kms_key_arn to use a customer-managed key.
  name              = "/aws/apigateway/${local.name_prefix}/publish-access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_apigatewayv2_stage" "publish" {
  #checkov:skip=CKV2_AWS_51:A stage client certificate is what API Gateway presents to HTTP backends; the only integration here is a Lambda proxy, invoked through IAM (aws_lambda_permission scoped to this stage and route).
  api_id = aws_apigatewayv2_api.publish.id
  # The HTTP API's default stage, served at the API's root
  # (https://<api>.execute-api.<region>.amazonaws.com/publish). A stage's name is scoped to its
  # API, whose name carries the workspace.
  name        = "$default"
  description = "Workspace ${terraform.workspace}"
  auto_deploy = true

  # The caller of each publish is the SigV4 identity (userArn): who published what.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.publish_access.arn
    format = jsonencode({
      requestId               = "$context.requestId"
      extendedRequestId       = "$context.extendedRequestId"
      requestTime             = "$context.requestTime"
      requestTimeEpoch        = "$context.requestTimeEpoch"
      apiId                   = "$context.apiId"
      stage                   = "$context.stage"
      routeKey                = "$context.routeKey"
      httpMethod              = "$context.httpMethod"
      path                    = "$context.path"
      protocol                = "$context.protocol"
      status                  = "$context.status"
      responseLength          = "$context.responseLength"
      sourceIp                = "$context.identity.sourceIp"
      userAgent               = "$context.identity.userAgent"
      callerAccountId         = "$context.identity.accountId"
      caller                  = "$context.identity.caller"
      userArn                 = "$context.identity.userArn"
      integrationStatus       = "$context.integration.status"
      integrationError        = "$context.integration.error"
      integrationLatency      = "$context.integration.latency"
      integrationErrorMessage = "$context.integrationErrorMessage"
      errorMessage            = "$context.error.messageString"
      errorResponseType       = "$context.error.responseType"
    })
  }

  # Each publish becomes a fan-out job of up to a whole room, like a sendmessage: its own limit.
  # (HTTP APIs have no execution logs: logging_level and data_trace_enabled are WebSocket-only.)
  default_route_settings {
    throttling_burst_limit   = var.publish_throttling_burst_limit
    throttling_rate_limit    = var.publish_throttling_rate_limit
    detailed_metrics_enabled = var.detailed_metrics_enabled
  }
}
