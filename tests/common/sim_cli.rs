//! The real `domus` binary on the simulator: each call a separate process
//! sharing one state directory, as an operator's shell.

use assert_cmd::Command;

pub struct SimHost {
    pub dir: tempfile::TempDir,
}

impl SimHost {
    pub fn new() -> SimHost {
        SimHost {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
        }
    }

    pub fn domus(&self) -> Command {
        let mut cmd = Command::cargo_bin("domus").unwrap_or_else(|e| panic!("domus binary: {e}"));
        cmd.arg("--state-dir")
            .arg(self.dir.path())
            .arg("--backend")
            .arg("sim")
            .env_remove("DOMUS_SIM_FAULTS");
        cmd
    }

    /// Success, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self
            .domus()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Stdout of a command that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "domus {args:?} failed: {err}");
        out
    }

    pub fn list_row(&self, name: &str) -> Option<String> {
        self.stdout(&["list"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(str::to_string)
    }

    pub fn state(&self, name: &str) -> Option<String> {
        self.list_row(name)
            .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
    }
}
