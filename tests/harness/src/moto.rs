//! A private moto server (S3 over real HTTP) that a test may stop and start again on the same
//! port, without disturbing the shared one. moto keeps its data in memory: a restarted server
//! is empty until the test puts its bucket and objects back.

use super::{await_listening, closed_port, env_var};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A moto server on a fixed loopback port, running or stopped.
pub struct OwnMoto {
    pub port: u16,
    child: Option<Child>,
}

impl OwnMoto {
    /// Starts moto on a free port and waits until it accepts connections.
    pub fn start() -> OwnMoto {
        let mut moto = OwnMoto {
            port: closed_port(),
            child: None,
        };
        moto.restart();
        moto
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`OwnMoto::stop`]), empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let child = Command::new(env_var("SUAI_TEST_MOTO_SERVER"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        self.child = Some(child);
        await_listening(self.port, Duration::from_secs(30), "own moto_server");
    }

    /// Stops it; connections to its port are refused from now on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id (to pause it with SIGSTOP); panics when it is stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("moto is running").id()
    }

    /// Creates `bucket` when missing and puts `body` at `key`; returns the object's ETag
    /// without quotes.
    pub fn put(&self, bucket: &str, key: &str, body: &str) -> String {
        put_object(&self.url(), bucket, key, body)
    }
}

/// Puts `body` at `bucket`/`key` on the moto server at `endpoint` (creating the bucket when
/// missing) with boto3; returns the object's ETag without quotes.
pub fn put_object(endpoint: &str, bucket: &str, key: &str, body: &str) -> String {
    let script = format!(
        "import boto3,sys\n\
         s=boto3.client('s3',endpoint_url='{endpoint}',region_name='us-east-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
         b,k=sys.argv[1],sys.argv[2]\n\
         if b not in [x['Name'] for x in s.list_buckets()['Buckets']]: s.create_bucket(Bucket=b)\n\
         print(s.put_object(Bucket=b,Key=k,Body=sys.stdin.buffer.read())['ETag'].strip('\"'))\n"
    );
    let out = super::run_with_stdin(
        Command::new(venv_python()).args(["-c", &script, bucket, key]),
        body.as_bytes(),
        "the moto venv's python",
    );
    assert!(out.status.success(), "boto3 put {bucket}/{key}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Python of the moto venv the test environment installed (it has boto3).
pub fn venv_python() -> PathBuf {
    PathBuf::from(env_var("SUAI_TEST_MOTO_SERVER"))
        .parent()
        .unwrap()
        .join("python")
}

/// Runs `code` with boto3 clients `sm` (Secrets Manager) and `ssm` on the moto server at
/// `endpoint` (keys `testing`, us-east-1); returns what it prints, trimmed.
pub fn boto(endpoint: &str, code: &str) -> String {
    let script = format!(
        "import boto3, json, sys\n\
         kw = dict(endpoint_url={endpoint:?}, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         sm = boto3.client('secretsmanager', **kw)\n\
         ssm = boto3.client('ssm', **kw)\n{code}\n"
    );
    let out = Command::new(venv_python())
        .args(["-c", &script])
        .output()
        .expect("the moto venv's python (boto3)");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
