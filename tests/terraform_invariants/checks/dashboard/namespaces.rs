//! The AWS namespaces the stack graphs: the dimensions CloudWatch documents for them, and the
//! resources of the module whose names (or ids) those dimensions take.

/// The dimension sets CloudWatch documents for the AWS namespaces this stack graphs, in any
/// order. Account-wide metrics (no dimension) are left out on purpose: every graph here is about
/// this stack's resources. API Gateway's are those of WebSocket (and HTTP) APIs, keyed by ApiId;
/// REST APIs use ApiName instead.
pub const AWS_NAMESPACES: &[(&str, &[&[&str]])] = &[
    (
        "AWS/Lambda",
        &[
            &["FunctionName"],
            &["FunctionName", "Resource"],
            &["FunctionName", "Resource", "ExecutedVersion"],
        ],
    ),
    ("AWS/SQS", &[&["QueueName"]]),
    (
        "AWS/ApiGateway",
        &[
            &["ApiId"],
            &["ApiId", "Stage"],
            &["ApiId", "Stage", "Route"],
        ],
    ),
    (
        "AWS/DynamoDB",
        &[
            &["TableName"],
            &["TableName", "Operation"],
            &["TableName", "GlobalSecondaryIndexName"],
            &["TableName", "StreamLabel"],
        ],
    ),
];

/// Dimensions whose value is the name (or id) of a resource of the module: the dimension and
/// the `TYPE.ATTRIBUTE` it takes its values from.
pub const DIMENSION_RESOURCES: &[(&str, &str)] = &[
    ("FunctionName", "aws_lambda_function.function_name"),
    ("QueueName", "aws_sqs_queue.name"),
    ("TableName", "aws_dynamodb_table.name"),
    ("ApiId", "aws_apigatewayv2_api.id"),
    ("Stage", "aws_apigatewayv2_stage.name"),
];
