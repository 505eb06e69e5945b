//! What `tidegate test` prints, and its JUnit XML for CI systems.

use super::suite::Case;
use std::path::{Path, PathBuf};

/// A file's results: its cases, or why it did not run.
pub type FileResult = Result<Vec<Case>, String>;

fn ms(c: &Case) -> f64 {
    c.time.as_secs_f64() * 1000.0
}

/// One line per case; a failure's message and diff indented under it.
pub fn print_file(path: &Path, r: &FileResult) {
    let file = path.display();
    match r {
        Err(e) => {
            println!("FAIL {file} (did not run)");
            for l in e.lines() {
                println!("     {l}");
            }
        }
        Ok(cases) if cases.is_empty() => println!("FAIL {file}: no it(...) cases"),
        Ok(cases) => {
            for c in cases {
                match &c.failure {
                    None => println!("ok   {file} › {} ({:.1} ms)", c.name, ms(c)),
                    Some(f) => {
                        println!("FAIL {file} › {} ({:.1} ms)", c.name, ms(c));
                        for l in f.lines() {
                            println!("     {l}");
                        }
                    }
                }
            }
        }
    }
}

/// Passed and failed cases; a file that did not run, or has no cases, counts one failure.
pub fn totals(results: &[(PathBuf, FileResult)]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for (_, r) in results {
        match r {
            Ok(cases) if !cases.is_empty() => {
                for c in cases {
                    if c.failure.is_some() {
                        failed += 1;
                    } else {
                        passed += 1;
                    }
                }
            }
            _ => failed += 1,
        }
    }
    (passed, failed)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: a `testsuite` per file, a `testcase` per case, `failure` with the message.
pub fn junit(results: &[(PathBuf, FileResult)]) -> String {
    let (passed, failed) = totals(results);
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tidegate test\" tests=\"{}\" failures=\"{failed}\">\n",
        passed + failed
    );
    for (path, r) in results {
        let file = esc(&path.display().to_string());
        match r {
            Err(e) => {
                x.push_str(&format!(
                    "  <testsuite name=\"{file}\" tests=\"1\" failures=\"1\">\n    <testcase classname=\"{file}\" name=\"(load)\">\n      <failure message=\"the file did not run\">{}</failure>\n    </testcase>\n  </testsuite>\n",
                    esc(e)
                ));
            }
            Ok(cases) => {
                let fails = cases.iter().filter(|c| c.failure.is_some()).count();
                x.push_str(&format!(
                    "  <testsuite name=\"{file}\" tests=\"{}\" failures=\"{fails}\">\n",
                    cases.len()
                ));
                for c in cases {
                    x.push_str(&format!(
                        "    <testcase classname=\"{file}\" name=\"{}\" time=\"{:.6}\"",
                        esc(&c.name),
                        c.time.as_secs_f64()
                    ));
                    match &c.failure {
                        None => x.push_str("/>\n"),
                        Some(f) => x.push_str(&format!(
                            ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                            esc(f.lines().next().unwrap_or("")),
                            esc(f)
                        )),
                    }
                }
                x.push_str("  </testsuite>\n");
            }
        }
    }
    x.push_str("</testsuites>\n");
    x
}
