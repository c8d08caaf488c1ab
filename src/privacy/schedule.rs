//! The clean-up that needs no running app: a scheduler of the system runs
//! `backgrounderase privacy sweep` at login and at least hourly, so what the
//! app kept is deleted on time whether or not it ever runs again.
//!
//! - Linux: a systemd user timer. The `.deb` ships the units in
//!   `/usr/lib/systemd/user` and enables them for every user; a source or
//!   portable run writes its own into `~/.config/systemd/user` on start.
//! - macOS: a LaunchAgent; Windows: a Task Scheduler task (definitions in
//!   `packaging/`, installed by the installers; confirmed here by asking).
//!
//! When no scheduler can be confirmed the app fails closed: nothing of the
//! user's outlives the session (see [`Cleanup::SessionOnly`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::paths::{AppDirs, HOME_ENV};

/// The units' name for the default profile.
pub const UNIT_BASE: &str = "backgrounderase-sweep";
/// Where the `.deb` puts its units.
pub const PACKAGED_UNIT_DIR: &str = "/usr/lib/systemd/user";
/// The command the scheduler runs (after the executable).
pub const SWEEP_ARGS: [&str; 2] = ["privacy", "sweep"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    Systemd,
    LaunchAgent,
    TaskScheduler,
}

impl Scheduler {
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::LaunchAgent => "launchd",
            Scheduler::TaskScheduler => "Task Scheduler",
        }
    }
}

/// How what the app keeps is cleaned up when it is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// A scheduler runs the sweep at login and every hour.
    Scheduled { scheduler: Scheduler },
    /// None could be confirmed: without opt-in the app keeps nothing past
    /// the session (deleted at exit; what a crash left is deleted at the
    /// next start before anything else), and says why.
    SessionOnly { why: String },
}

impl Cleanup {
    /// "hourly (systemd)".
    pub fn describe(&self) -> String {
        match self {
            Cleanup::Scheduled { scheduler } => format!("hourly ({})", scheduler.name()),
            Cleanup::SessionOnly { .. } => "none confirmed".to_string(),
        }
    }

    pub fn is_scheduled(&self) -> bool {
        matches!(self, Cleanup::Scheduled { .. })
    }

    /// When the next scheduled sweep starts at the latest (the timer runs
    /// on the hour).
    pub fn next_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Cleanup::Scheduled { .. } => now
                .duration_trunc(TimeDelta::hours(1))
                .ok()
                .map(|hour| hour + TimeDelta::hours(1)),
            Cleanup::SessionOnly { .. } => None,
        }
    }
}

/// The systemd unit name for a profile: the default one, or one of its own
/// for a portable `BACKGROUNDERASE_HOME`.
pub fn unit_name(portable_home: Option<&Path>) -> String {
    match portable_home {
        None => UNIT_BASE.to_string(),
        Some(home) => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
            let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{UNIT_BASE}-{short}")
        }
    }
}

/// A value quoted for a systemd unit line (spaces, quotes and `%`).
fn systemd_quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The service: one sweep, printing counts only (the journal gets no names).
pub fn service_unit(exe: &str, portable_home: Option<&str>) -> String {
    let mut text = String::from(
        "[Unit]\n\
         Description=BackgroundErase: delete local data past its 24-hour limit\n\
         \n\
         [Service]\n\
         Type=oneshot\n",
    );
    if let Some(home) = portable_home {
        text.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{HOME_ENV}={home}"))
        ));
    }
    text.push_str(&format!(
        "ExecStart={} {}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n",
        systemd_quote(exe),
        SWEEP_ARGS.join(" ")
    ));
    text
}

/// The timer: two minutes after login (the user's manager starting), on
/// every hour, and at once for a run missed while logged out or powered off.
pub fn timer_unit(name: &str) -> String {
    format!(
        "[Unit]\n\
         Description=BackgroundErase: hourly clean-up of local data\n\
         \n\
         [Timer]\n\
         OnStartupSec=2min\n\
         OnCalendar=hourly\n\
         Persistent=true\n\
         AccuracySec=1min\n\
         Unit={name}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// The macOS LaunchAgent's label for a profile.
pub fn launchd_label(portable_home: Option<&Path>) -> String {
    unit_name(portable_home).replace(UNIT_BASE, "app.backgrounderase.sweep")
}

fn xml_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The macOS LaunchAgent: at load (login) and every hour, output dropped.
pub fn launch_agent(label: &str, exe: &str, portable_home: Option<&str>) -> String {
    let environment = portable_home.map_or(String::new(), |home| {
        format!(
            "    <key>EnvironmentVariables</key>\n    <dict>\n        <key>{HOME_ENV}</key>\n        <string>{}</string>\n    </dict>\n",
            xml_escape(home)
        )
    });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{label}</string>
    <key>ProgramArguments</key>
    <array>
        <string>{exe}</string>
        <string>privacy</string>
        <string>sweep</string>
    </array>
{environment}    <key>RunAtLoad</key>
    <true/>
    <key>StartInterval</key>
    <integer>3600</integer>
    <key>ProcessType</key>
    <string>Background</string>
    <key>LowPriorityIO</key>
    <true/>
    <key>StandardOutPath</key>
    <string>/dev/null</string>
    <key>StandardErrorPath</key>
    <string>/dev/null</string>
</dict>
</plist>
"#,
        label = xml_escape(label),
        exe = xml_escape(exe),
    )
}

/// The Windows Task Scheduler task: at logon (after two minutes) and every
/// hour, catching up a run missed while the computer was off.
pub fn scheduled_task(exe: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>BackgroundErase: hourly clean-up of local data</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <Delay>PT2M</Delay>
    </LogonTrigger>
    <TimeTrigger>
      <StartBoundary>2026-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
      <Repetition>
        <Interval>PT1H</Interval>
      </Repetition>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <StartWhenAvailable>true</StartWhenAvailable>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <ExecutionTimeLimit>PT10M</ExecutionTimeLimit>
    <Hidden>true</Hidden>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{exe}</Command>
      <Arguments>privacy sweep</Arguments>
    </Exec>
  </Actions>
</Task>
"#,
        exe = xml_escape(exe),
    )
}

/// The folder of the user's own systemd units.
pub fn user_unit_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("systemd/user"))
}

/// Runs `systemctl --user ARGS` with a time limit; `None` if it cannot run.
fn systemctl(args: &[&str]) -> Option<std::process::Output> {
    let mut child = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn systemctl_says(args: &[&str], expected: &str) -> bool {
    systemctl(args).is_some_and(|out| String::from_utf8_lossy(&out.stdout).trim() == expected)
}

/// The portable home this process runs with, if any.
fn portable_home() -> Option<PathBuf> {
    std::env::var_os(HOME_ENV)
        .filter(|v| !v.is_empty())
        .map(|h| std::path::absolute(PathBuf::from(h)).unwrap_or_default())
}

/// Makes sure a scheduler will sweep this profile's store, installing the
/// user units when needed (Linux), and says whether it could be confirmed.
pub fn ensure(dirs: &AppDirs) -> Cleanup {
    let _ = dirs;
    #[cfg(target_os = "linux")]
    {
        match ensure_systemd() {
            Ok(()) => Cleanup::Scheduled {
                scheduler: Scheduler::Systemd,
            },
            Err(why) => Cleanup::SessionOnly { why },
        }
    }
    #[cfg(target_os = "macos")]
    {
        if let Err(why) = install_launch_agent() {
            return Cleanup::SessionOnly { why };
        }
        query_launchd()
    }
    #[cfg(windows)]
    {
        if let Err(why) = install_scheduled_task() {
            return Cleanup::SessionOnly { why };
        }
        query_task_scheduler()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        Cleanup::SessionOnly {
            why: "this system has no scheduler the app knows".into(),
        }
    }
}

/// This program's path as text (scheduler definitions need text).
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
fn exe_text() -> Result<String, String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot tell where this program is ({e})"))?;
    exe.to_str()
        .map(str::to_string)
        .ok_or_else(|| "this program's path is not valid UTF-8".into())
}

/// Writes the LaunchAgent into `~/Library/LaunchAgents` and loads it.
/// (Not built or tested here: see packaging/README.md.)
#[cfg(target_os = "macos")]
fn install_launch_agent() -> Result<(), String> {
    let home = std::env::var_os("HOME").ok_or("no home folder")?;
    let portable = portable_home();
    let label = launchd_label(portable.as_deref());
    let portable_text = portable
        .as_ref()
        .and_then(|h| h.to_str().map(str::to_string));
    let text = launch_agent(&label, &exe_text()?, portable_text.as_deref());
    let dir = PathBuf::from(home).join("Library/LaunchAgents");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
    let path = dir.join(format!("{label}.plist"));
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {} ({e})", path.display()))?;
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .map_err(|e| format!("cannot tell the user id ({e})"))?;
    let domain = format!("gui/{uid}");
    let _ = Command::new("launchctl")
        .args(["bootout", &format!("{domain}/{label}")])
        .status();
    Command::new("launchctl")
        .args(["bootstrap", &domain])
        .arg(&path)
        .status()
        .map_err(|e| format!("cannot run launchctl ({e})"))
        .and_then(|s| {
            s.success()
                .then_some(())
                .ok_or_else(|| format!("launchctl could not load {}", path.display()))
        })
}

/// Registers the task for this user with `schtasks /Create /XML`.
/// (Not built or tested here: see packaging/README.md.)
#[cfg(windows)]
fn install_scheduled_task() -> Result<(), String> {
    if query_task_scheduler().is_scheduled() {
        return Ok(());
    }
    let xml = std::env::temp_dir().join("backgrounderase-sweep-task.xml");
    std::fs::write(&xml, scheduled_task(&exe_text()?))
        .map_err(|e| format!("cannot write {} ({e})", xml.display()))?;
    let status = Command::new("schtasks")
        .args(["/Create", "/TN", r"BackgroundErase\Sweep", "/F", "/XML"])
        .arg(&xml)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_file(&xml);
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => Err(r"the clean-up task BackgroundErase\Sweep could not be registered".into()),
    }
}

/// What is in place now, without installing anything (`privacy status`).
pub fn query(dirs: &AppDirs) -> Cleanup {
    let _ = dirs;
    #[cfg(target_os = "linux")]
    {
        let timer = format!("{}.timer", unit_name(portable_home().as_deref()));
        if systemctl_says(&["is-active", &timer], "active") {
            Cleanup::Scheduled {
                scheduler: Scheduler::Systemd,
            }
        } else {
            Cleanup::SessionOnly {
                why: format!("the systemd user timer {timer} is not active"),
            }
        }
    }
    #[cfg(target_os = "macos")]
    {
        query_launchd()
    }
    #[cfg(windows)]
    {
        query_task_scheduler()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        Cleanup::SessionOnly {
            why: "this system has no scheduler the app knows".into(),
        }
    }
}

#[cfg(target_os = "linux")]
fn ensure_systemd() -> Result<(), String> {
    // A user manager to talk to (none in containers, WSL without systemd,
    // or some minimal desktops).
    if !systemctl(&["show-environment"]).is_some_and(|out| out.status.success()) {
        return Err("no systemd user session to run the hourly clean-up".into());
    }
    let home = portable_home();
    let name = unit_name(home.as_deref());
    let timer = format!("{name}.timer");
    let packaged = home.is_none() && Path::new(PACKAGED_UNIT_DIR).join(&timer).is_file();
    if !packaged {
        let exe = exe_text()?;
        let home_text = match &home {
            Some(h) => Some(
                h.to_str()
                    .ok_or("BACKGROUNDERASE_HOME is not valid UTF-8, which systemd units need")?,
            ),
            None => None,
        };
        install_user_units(&name, &exe, home_text)?;
    }
    // Load (or reload) the units and start the timer now. The packaged
    // timer is enabled for every user by the package; a user's own is
    // enabled here, so it starts at every login too.
    let _ = systemctl(&["daemon-reload"]);
    let enabled = if packaged {
        systemctl(&["start", &timer])
    } else {
        systemctl(&["enable", "--now", &timer])
    };
    if systemctl_says(&["is-active", &timer], "active") {
        Ok(())
    } else {
        let detail = enabled
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "not active".into());
        Err(format!(
            "the systemd user timer {timer} could not be started ({detail})"
        ))
    }
}

/// Writes the service and timer into the user's unit folder (when they
/// differ from what is there).
#[cfg(target_os = "linux")]
fn install_user_units(name: &str, exe: &str, home: Option<&str>) -> Result<(), String> {
    let dir = user_unit_dir().ok_or("no home folder for systemd user units")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
    for (file, text) in [
        (format!("{name}.service"), service_unit(exe, home)),
        (format!("{name}.timer"), timer_unit(name)),
    ] {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        crate::fsutil::write_atomically(&path, text.as_bytes(), crate::fsutil::Access::Private)
            .map_err(|e| format!("cannot write {} ({e})", path.display()))?;
    }
    Ok(())
}

/// The LaunchAgent the macOS installer places (packaging/macos).
#[cfg(target_os = "macos")]
fn query_launchd() -> Cleanup {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let loaded = Command::new("launchctl")
        .args(["print", &format!("gui/{uid}/app.backgrounderase.sweep")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if loaded {
        Cleanup::Scheduled {
            scheduler: Scheduler::LaunchAgent,
        }
    } else {
        Cleanup::SessionOnly {
            why: "the clean-up LaunchAgent (app.backgrounderase.sweep) is not loaded".into(),
        }
    }
}

/// The task the Windows installer registers (packaging/windows).
#[cfg(windows)]
fn query_task_scheduler() -> Cleanup {
    let found = Command::new("schtasks")
        .args(["/Query", "/TN", r"BackgroundErase\Sweep"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Cleanup::Scheduled {
            scheduler: Scheduler::TaskScheduler,
        }
    } else {
        Cleanup::SessionOnly {
            why: r"the clean-up task BackgroundErase\Sweep is not registered".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_quote_paths_and_name_portable_profiles_apart() {
        let service = service_unit("/opt/Back ground%/backgrounderase", Some("/media/usb/be"));
        assert!(
            service.contains("ExecStart=\"/opt/Back ground%%/backgrounderase\" privacy sweep\n")
        );
        assert!(service.contains("Environment=\"BACKGROUNDERASE_HOME=/media/usb/be\"\n"));
        assert_eq!(unit_name(None), "backgrounderase-sweep");
        let a = unit_name(Some(Path::new("/media/usb/be")));
        assert!(a.starts_with("backgrounderase-sweep-") && a.len() == UNIT_BASE.len() + 9);
        assert_ne!(a, unit_name(Some(Path::new("/media/usb/other"))));
        let timer = timer_unit(&a);
        assert!(timer.contains(&format!("Unit={a}.service")));
        assert!(timer.contains("OnCalendar=hourly") && timer.contains("Persistent=true"));
    }

    #[test]
    fn the_macos_and_windows_definitions_are_well_formed() {
        let app = "/Applications/BackgroundErase.app/Contents/MacOS/backgrounderase";
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
        let plist = launch_agent("app.backgrounderase.sweep", app, None);
        assert_eq!(
            std::fs::read_to_string(dir.join("macos/app.backgrounderase.sweep.plist")).unwrap(),
            plist
        );
        let task = scheduled_task(r"C:\Program Files\BackgroundErase\backgrounderase.exe");
        assert_eq!(
            std::fs::read_to_string(dir.join("windows/backgrounderase-sweep-task.xml")).unwrap(),
            task
        );
        let portable = launch_agent("x", "/a&b/be", Some("/Volumes/USB <1>"));
        assert!(portable.contains("<string>/Volumes/USB &lt;1&gt;</string>"));
        assert!(portable.contains("<string>/a&amp;b/be</string>"));
        // Both parse as XML (Python's plistlib and ElementTree).
        for (text, check) in [
            (
                plist.as_str(),
                "import plistlib,sys; d=plistlib.loads(sys.stdin.buffer.read()); assert d['StartInterval']==3600 and d['RunAtLoad'], d",
            ),
            (
                portable.as_str(),
                "import plistlib,sys; d=plistlib.loads(sys.stdin.buffer.read()); assert d['EnvironmentVariables']['BACKGROUNDERASE_HOME']=='/Volumes/USB <1>', d",
            ),
            (
                task.as_str(),
                "import sys,xml.etree.ElementTree as E; r=E.fromstring(sys.stdin.buffer.read()); ns='{http://schemas.microsoft.com/windows/2004/02/mit/task}'; assert r.find(f'.//{ns}Interval').text=='PT1H'",
            ),
        ] {
            use std::io::Write;
            let mut child = Command::new("python3")
                .args(["-c", check])
                .stdin(Stdio::piped())
                .spawn()
                .expect("python3 is required by the tests");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success(), "{text}");
        }
    }

    #[test]
    fn the_packaged_units_are_the_ones_the_app_writes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/linux/systemd");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(
            read("backgrounderase-sweep.service"),
            service_unit("/usr/bin/backgrounderase", None)
        );
        assert_eq!(read("backgrounderase-sweep.timer"), timer_unit(UNIT_BASE));
    }

    #[test]
    fn the_next_run_is_on_the_next_hour() {
        let scheduled = Cleanup::Scheduled {
            scheduler: Scheduler::Systemd,
        };
        let now: DateTime<Utc> = "2026-12-02T18:28:10Z".parse().unwrap();
        assert_eq!(
            scheduled.next_run(now),
            Some("2026-12-02T19:00:00Z".parse().unwrap())
        );
        assert_eq!(scheduled.describe(), "hourly (systemd)");
    }
}
