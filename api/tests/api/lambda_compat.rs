//! Code written for AWS Lambda, pasted as the developer guide and the console write it, runs
//! unchanged on both runtimes: handler names, ES modules, the context object, the
//! `AWS_LAMBDA_*` environment and the root logger.

use crate::support::TestApp;
use common::Runtime;
use serde_json::{Value, json};

const BOTH: [&str; 2] = ["execute", "execute_gvisor"];

fn function(name: &str, language: &str, handler: &str, code: &str) -> Value {
    json!({
        "name": name, "route": format!("/lambda/{name}"), "language": language,
        "handler": handler, "code": code, "timeout": 10, "http_auth": "none",
    })
}

/// The Python console's default function, named as the console names it.
const CONSOLE_PY: &str = "import json

def lambda_handler(event, context):
    # TODO implement
    return {
        'statusCode': 200,
        'body': json.dumps('Hello from Lambda!')
    }
";

/// The developer guide's context example (with a shorter sleep), and the concatenations
/// that need AWS's string types.
const CONTEXT_PY: &str = "import os
import time

def lambda_handler(event, context):
    print(\"Lambda function ARN:\", context.invoked_function_arn)
    print(\"CloudWatch log stream name:\", context.log_stream_name)
    print(\"CloudWatch log group name:\",  context.log_group_name)
    print(\"Lambda Request ID:\", context.aws_request_id)
    print(\"Lambda function memory limits in MB:\", context.memory_limit_in_mb)
    time.sleep(0.01)
    print(\"Lambda time remaining in MS:\", context.get_remaining_time_in_millis())
    return {
        'memory': 'Memory: ' + context.memory_limit_in_mb,
        'version': 'Version ' + context.function_version,
        'arn': context.invoked_function_arn,
        'group': context.log_group_name,
        'stream': context.log_stream_name,
        'identity': context.identity,
        'client_context': context.client_context,
        'attempt': context.attempt,
        'env': {k: v for k, v in os.environ.items() if k.startswith('AWS_LAMBDA_')},
    }
";

/// The developer guide's logging example: the root logger, at INFO.
const LOGGING_PY: &str = "import os
import logging
logger = logging.getLogger()
logger.setLevel(\"INFO\")
logger.info('loaded')

def lambda_handler(event, context):
    logger.info('## ENVIRONMENT VARIABLES')
    logger.info(os.environ['AWS_LAMBDA_LOG_GROUP_NAME'])
    logger.info('## EVENT')
    logger.info(event)
    logging.debug('not shown')
    print('a print is unchanged')
    return 'logged'
";

/// The Node.js console's default function: an ES module.
const CONSOLE_MJS: &str = "export const handler = async (event) => {
  // TODO implement
  const response = {
    statusCode: 200,
    body: JSON.stringify('Hello from Lambda!'),
  };
  return response;
};
";

/// An ES module with an import, top-level await and a function declaration export.
const ESM_AWAIT: &str = "import { createHash } from 'node:crypto';
const salt = await Promise.resolve('salt');

export async function handler(event, context) {
  return {
    hash: createHash('sha256').update(salt + event.x).digest('hex').slice(0, 8),
    arn: context.invokedFunctionArn,
    memory: 'Memory: ' + context.memoryLimitInMB,
    version: context.functionVersion,
    group: context.logGroupName,
    stream: typeof context.logStreamName,
    waits: context.callbackWaitsForEmptyEventLoop,
    attempt: context.attempt,
    env: process.env.AWS_LAMBDA_FUNCTION_NAME,
  };
}
";

#[tokio::test]
async fn the_consoles_default_python_and_node_functions_run_unchanged() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    let made = app
        .create_function(function(
            "console_py",
            "python",
            "lambda_function.lambda_handler",
            CONSOLE_PY,
        ))
        .await;
    assert_eq!(made["handler"], "lambda_function.lambda_handler");
    app.create_function(function(
        "console_mjs",
        "javascript",
        "index.handler",
        CONSOLE_MJS,
    ))
    .await;
    app.create_function(function(
        "esm_default",
        "javascript",
        "index.handler",
        "export default async (event) => ({ kind: 'default', got: event.n });",
    ))
    .await;
    app.create_function(function(
        "legacy",
        "javascript",
        "index.handler",
        "exports.handler = function (event, context) { if (event.fail) context.fail(new Error('legacy no')); else context.succeed({ legacy: true }); };",
    ))
    .await;
    for endpoint in BOTH {
        for name in ["console_py", "console_mjs"] {
            let (status, body) = app.invoke(endpoint, name, json!({})).await;
            assert_eq!(status, 200, "{endpoint} {name}: {body}");
            assert_eq!(
                body["result"],
                json!({"statusCode": 200, "body": "\"Hello from Lambda!\""}),
                "{endpoint} {name}"
            );
        }
        let (status, body) = app.invoke(endpoint, "esm_default", json!({"n": 3})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(body["result"], json!({"kind": "default", "got": 3}));
        let (status, body) = app.invoke(endpoint, "legacy", json!({})).await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!({"legacy": true})),
            "{body}"
        );
        let (status, body) = app.invoke(endpoint, "legacy", json!({"fail": true})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("function_error")),
            "{body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains("legacy no"),
            "{body}"
        );
    }
    // Behind an HTTP route, the console's answer is what API Gateway would send.
    let response = reqwest::get(app.fn_url("/lambda/console_py"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "\"Hello from Lambda!\"");
    app.stop().await;
}

#[tokio::test]
async fn the_context_and_environment_are_lambdas_names_and_types() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(function(
        "ctx",
        "python",
        "lambda_function.lambda_handler",
        CONTEXT_PY,
    ))
    .await;
    let mut esm = function("esm_ctx", "javascript", "index.handler", ESM_AWAIT);
    esm["memory_mb"] = json!(256);
    app.create_function(esm).await;
    let mut own = function(
        "own_env",
        "python",
        "handler",
        "import os\ndef handler(event, context):\n    return [os.environ['AWS_LAMBDA_FUNCTION_NAME'], os.environ['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']]",
    );
    own["env"] = json!({"AWS_LAMBDA_FUNCTION_NAME": "mine"});
    app.create_function(own).await;
    for endpoint in BOTH {
        let (status, body) = app.invoke(endpoint, "ctx", json!({})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        let result = &body["result"];
        assert_eq!(result["memory"], "Memory: 128");
        assert_eq!(result["version"], "Version 1");
        assert_eq!(result["arn"], "arn:faas:lambda:local:default:function:ctx");
        assert_eq!(result["group"], "/faas/default/ctx");
        let stream = result["stream"].as_str().unwrap();
        assert!(stream.contains("/[1]"), "{stream}");
        assert_eq!(result["identity"], Value::Null);
        assert_eq!(result["client_context"], Value::Null);
        // A synchronous call is always its invocation's first attempt.
        assert_eq!(result["attempt"], 1);
        assert_eq!(
            result["env"],
            json!({
                "AWS_LAMBDA_FUNCTION_NAME": "ctx",
                "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "AWS_LAMBDA_LOG_GROUP_NAME": "/faas/default/ctx",
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            })
        );
        let logs = body["logs"].as_str().unwrap();
        let id = body["invocation_id"].as_str().unwrap();
        assert!(logs.contains(&format!("Lambda Request ID: {id}")), "{logs}");
        assert!(
            logs.contains("Lambda function ARN: arn:faas:lambda:local:default:function:ctx"),
            "{logs}"
        );

        let (status, body) = app.invoke(endpoint, "esm_ctx", json!({"x": 1})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(
            body["result"],
            json!({
                "hash": body["result"]["hash"].clone(),
                "arn": "arn:faas:lambda:local:default:function:esm_ctx",
                "memory": "Memory: 256",
                "version": "1",
                "group": "/faas/default/esm_ctx",
                "stream": "string",
                "waits": true,
                "attempt": 1,
                "env": "esm_ctx",
            })
        );
        assert_eq!(body["result"]["hash"].as_str().unwrap().len(), 8);

        let (status, body) = app.invoke(endpoint, "own_env", json!({})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        assert_eq!(
            body["result"],
            json!(["mine", "128"]),
            "the user's env wins"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_root_logger_writes_lambdas_lines_into_the_calls_logs() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(function(
        "logs",
        "python",
        "lambda_function.lambda_handler",
        LOGGING_PY,
    ))
    .await;
    for endpoint in BOTH {
        let (status, body) = app.invoke(endpoint, "logs", json!({"k": "v"})).await;
        assert_eq!(status, 200, "{endpoint}: {body}");
        let logs = body["logs"].as_str().unwrap();
        let id = body["invocation_id"].as_str().unwrap();
        let lines: Vec<&str> = logs.lines().collect();
        let event_line = lines
            .iter()
            .find(|line| line.ends_with("\t## EVENT"))
            .unwrap_or_else(|| panic!("{endpoint}: no ## EVENT line in {logs:?}"));
        let fields: Vec<&str> = event_line.split('\t').collect();
        assert_eq!(fields[0], "[INFO]", "{event_line}");
        assert!(
            fields[1].len() == 24 && fields[1].ends_with('Z') && fields[1].contains('T'),
            "a UTC timestamp with milliseconds: {event_line}"
        );
        assert_eq!(fields[2], id, "{event_line}");
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!("\t{id}\t{{'k': 'v'}}"))),
            "{logs}"
        );
        assert!(
            lines.iter().any(|l| l.ends_with("\t/faas/default/logs")),
            "{logs}"
        );
        assert!(lines.contains(&"a print is unchanged"), "{logs}");
        assert!(!logs.contains("not shown"), "{logs}");
    }
    app.stop().await;
}

/// A callback handler that leaves a timer behind: its output belongs to this call when the
/// callback waits for the event loop (the default), to a later one when it does not.
const CALLBACK_TIMER: &str = "exports.handler = function (event, context, callback) {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => console.log('timer fired after ' + event.ms), event.ms);
  callback(null, { waits: context.callbackWaitsForEmptyEventLoop });
};
";

#[tokio::test]
async fn a_callback_waits_for_the_event_loop_unless_told_not_to() {
    let app = TestApp::with_workers(&[Runtime::Docker, Runtime::Gvisor]).await;
    app.create_function(function(
        "timers",
        "javascript",
        "index.handler",
        CALLBACK_TIMER,
    ))
    .await;
    for endpoint in BOTH {
        let (status, body) = app
            .invoke(endpoint, "timers", json!({"wait": true, "ms": 50}))
            .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!({"waits": true})),
            "{body}"
        );
        assert_eq!(
            body["logs"], "timer fired after 50\n",
            "{endpoint}: the timer ran first"
        );
        assert!(body["timing"]["run_ms"].as_f64().unwrap() >= 50.0, "{body}");

        let (status, body) = app
            .invoke(endpoint, "timers", json!({"wait": false, "ms": 1000}))
            .await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!({"waits": false})),
            "{body}"
        );
        assert_eq!(body["logs"], "", "{endpoint}: answered before its timer");

        // The timer went on in the warm container; its line comes with the next call.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let (status, body) = app
            .invoke(endpoint, "timers", json!({"wait": true, "ms": 1}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["logs"], "timer fired after 1000\ntimer fired after 1\n",
            "{endpoint}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_malformed_handler_says_which() {
    let app = TestApp::with_workers(&[Runtime::Docker]).await;
    app.create_function(function(
        "absent_py",
        "python",
        "lambda_function.nothere",
        CONSOLE_PY,
    ))
    .await;
    app.create_function(function(
        "absent_mjs",
        "javascript",
        "index.nothere",
        CONSOLE_MJS,
    ))
    .await;
    for name in ["absent_py", "absent_mjs"] {
        let (status, body) = app.invoke("execute", name, json!({})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("init_error")),
            "{body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("Runtime.HandlerNotFound") && detail.contains("nothere"),
            "{name}: {detail}"
        );
    }
    for bad in [
        "",
        "1x",
        "index.",
        "../x.handler",
        "lambda function.handler",
    ] {
        let (status, body) = app
            .post(
                "/functions/",
                &function("bad_handler", "python", bad, CONSOLE_PY),
            )
            .await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("handler"),
            "{body}"
        );
    }
    // A function created without one keeps the default.
    let made = app
        .create_function(json!({
            "name": "plain", "route": "/plain", "language": "python",
            "code": "def handler(event, context):\n    return 1", "timeout": 5,
        }))
        .await;
    assert_eq!(made["handler"], "handler");
    app.stop().await;
}
