"""The values that stand in for what only AWS knows: computed attributes of resources and the
attributes of data sources, as realistic templates. Extend these tables when the module reaches an
attribute they lack; the renderer never guesses."""

# A realistic account and partition for computed attributes. The region is the aws provider's
# `region` argument when it sets one (the data source aws_region returns the same).
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
DEFAULT_REGION = "us-east-1"

# (resource type, attribute) -> template of a computed attribute. Placeholders: {region},
# {account}, {partition}, {stub_id} (a 10-character id, distinct per instance), or the name of
# an argument of the resource block, replaced by its value.
COMPUTED = {
    ("aws_apigatewayv2_api", "id"): "{stub_id}",
    ("aws_apigatewayv2_api", "api_endpoint"): "wss://{stub_id}.execute-api.{region}.amazonaws.com",
    ("aws_apigatewayv2_api", "execution_arn"): "arn:{partition}:execute-api:{region}:{account}:{stub_id}",
    ("aws_apigatewayv2_integration", "id"): "{stub_id}",
    ("aws_apigatewayv2_route", "id"): "{stub_id}",
    ("aws_apigatewayv2_stage", "id"): "{name}",
    ("aws_apigatewayv2_stage", "invoke_url"): "wss://{stub_id}.execute-api.{region}.amazonaws.com/{name}",
    ("aws_cloudwatch_dashboard", "dashboard_arn"): "arn:{partition}:cloudwatch::{account}:dashboard/{dashboard_name}",
    ("aws_cloudwatch_log_group", "arn"): "arn:{partition}:logs:{region}:{account}:log-group:{name}",
    ("aws_cloudwatch_metric_alarm", "arn"): "arn:{partition}:cloudwatch:{region}:{account}:alarm:{alarm_name}",
    ("aws_cloudwatch_metric_alarm", "id"): "{alarm_name}",
    ("aws_dynamodb_table", "arn"): "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    ("aws_dynamodb_table", "id"): "{name}",
    ("aws_dynamodb_table", "stream_arn"): "arn:{partition}:dynamodb:{region}:{account}:table/{name}/stream/2024-01-01T00:00:00.000",
    ("aws_iam_role", "arn"): "arn:{partition}:iam::{account}:role/{name}",
    ("aws_iam_role", "id"): "{name}",
    ("aws_lambda_function", "arn"): "arn:{partition}:lambda:{region}:{account}:function:{function_name}",
    ("aws_lambda_function", "invoke_arn"): "arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/arn:{partition}:lambda:{region}:{account}:function:{function_name}/invocations",
    ("aws_lambda_function", "qualified_arn"): "arn:{partition}:lambda:{region}:{account}:function:{function_name}:$LATEST",
    ("aws_secretsmanager_secret", "arn"): "arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
    ("aws_secretsmanager_secret", "id"): "arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
    ("aws_apigatewayv2_authorizer", "id"): "{stub_id}",
    ("aws_sns_topic", "arn"): "arn:{partition}:sns:{region}:{account}:{name}",
    ("aws_sns_topic", "id"): "arn:{partition}:sns:{region}:{account}:{name}",
    ("aws_sqs_queue", "arn"): "arn:{partition}:sqs:{region}:{account}:{name}",
    ("aws_sqs_queue", "id"): "https://sqs.{region}.amazonaws.com/{account}/{name}",
    ("aws_sqs_queue", "url"): "https://sqs.{region}.amazonaws.com/{account}/{name}",
}

# (data source type, attribute) -> template, placeholders as in COMPUTED (no arguments).
DATA = {
    ("aws_caller_identity", "account_id"): "{account}",
    ("aws_caller_identity", "arn"): "arn:{partition}:iam::{account}:user/render",
    ("aws_partition", "partition"): "{partition}",
    ("aws_partition", "dns_suffix"): "amazonaws.com",
    ("aws_partition", "reverse_dns_prefix"): "com.amazonaws",
    ("aws_region", "region"): "{region}",
    ("aws_region", "name"): "{region}",
    ("aws_region", "id"): "{region}",
}


# Names the renderer gives the locals it adds to the stub module; the module's own locals may not
# use the prefix.
STUB_PREFIX = "stub__"
