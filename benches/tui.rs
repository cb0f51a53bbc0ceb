//! TUI figures (criterion): drawing the domain table with 10,000 domains,
//! and console throughput through the vt100 parser and the console widget.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossterm::event::KeyCode;
use domus::console::EscapeFilter;
use domus::tui::console::ConsoleBuffer;
use domus::tui::testing::{Harness, HarnessOptions};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use tui_term::widget::PseudoTerminal;

/// Full sizes under `cargo bench`; small ones when `cargo test` runs the
/// benches once as a smoke test (debug builds, shared CI machine).
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn table_10k(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut h = Harness::new(HarnessOptions {
        size: (200, 60),
        theme: "dark",
        read_only: false,
        config_dir: &root.path().join("domains"),
        recovery_dir: &root.path().join("recovery"),
        state_dir: None,
    });
    let n = if full() { 10_000 } else { 200 };
    for i in 0..n {
        let (config, _) = domus::config::parse_str(
            &format!("(vm (name d{i:05}) (memory 1) (image (linux (kernel /k))))"),
            "bench",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        h.engine()
            .create(&config, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    h.tick(1.0);
    h.tick(1.0);
    assert_eq!(h.app.table.rows.len(), n + 1);
    let mut g = c.benchmark_group("tui");
    g.bench_function("draw+diff one frame, 10,000 domains, 200x60", |b| {
        // Move the selection each frame so every frame differs.
        let mut down = true;
        b.iter(|| {
            h.key(if down {
                KeyCode::PageDown
            } else {
                KeyCode::PageUp
            });
            down = !down;
            h.draw();
        })
    });
    // The refresh tick: poll the engine and update the table (what the
    // idle TUI does every second).
    g.bench_function("whole refresh (poll + table update), 10,000 domains", |b| {
        b.iter(|| h.tick(1.0))
    });
    g.bench_function(
        "tick: the cheap read (CPU time, state), 10,000 domains",
        |b| {
            b.iter(|| {
                h.clock.advance_secs(1.0);
                h.dispatch(domus::tui::action::Action::Tick)
            })
        },
    );
    g.finish();
}

/// Console-like output: prompts, colour, long lines, a little cursor work.
fn console_stream(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 200);
    let mut i = 0u64;
    while out.len() < len {
        i += 1;
        out.extend_from_slice(
            format!(
                "[{:5}.{:06}] \x1b[32mok\x1b[0m eth0: rx {} tx {} packets; buffer {:08x} {}\r\n",
                i / 1000,
                i % 1000,
                i * 7,
                i * 3,
                i.wrapping_mul(0x9e37_79b9),
                "abcdefghijklmnopqrstuvwxyz".repeat((i % 4) as usize)
            )
            .as_bytes(),
        );
        if i.is_multiple_of(50) {
            out.extend_from_slice(b"\x1b[2K\r/ # ls -l\r\n");
        }
    }
    out
}

fn console_throughput(c: &mut Criterion) {
    let stream = console_stream(if full() { 4 << 20 } else { 64 << 10 });
    let mut g = c.benchmark_group("console");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    g.bench_function(
        "4 MiB through vt100 + console widget (drawn per 64 KiB)",
        |b| {
            b.iter(|| {
                let mut console = ConsoleBuffer::new(58, 200);
                let area = Rect::new(0, 0, 200, 58);
                let mut buf = Buffer::empty(area);
                for chunk in stream.chunks(64 * 1024) {
                    console.feed(black_box(chunk));
                    PseudoTerminal::new(console.parser.screen()).render(area, &mut buf);
                }
                black_box(&buf);
            })
        },
    );
    // The real loop draws once per batch of pending actions, not per chunk:
    // under a flood that is far rarer than every 64 KiB.
    g.bench_function(
        "4 MiB through vt100 + console widget (drawn per 1 MiB)",
        |b| {
            b.iter(|| {
                let mut console = ConsoleBuffer::new(58, 200);
                let area = Rect::new(0, 0, 200, 58);
                let mut buf = Buffer::empty(area);
                for chunk in stream.chunks(1 << 20) {
                    console.feed(black_box(chunk));
                    PseudoTerminal::new(console.parser.screen()).render(area, &mut buf);
                }
                black_box(&buf);
            })
        },
    );
    g.bench_function("4 MiB through the vt100 parser alone", |b| {
        b.iter(|| {
            let mut parser = vt100::Parser::new(58, 200, 5000);
            parser.process(black_box(&stream));
            black_box(parser.screen().cursor_position());
        })
    });
    g.bench_function("4 MiB through the console escape filter alone", |b| {
        b.iter(|| {
            let mut filter = EscapeFilter::new();
            let mut out = Vec::with_capacity(64 * 1024);
            for chunk in stream.chunks(64 * 1024) {
                out.clear();
                filter.feed(black_box(chunk), &mut out);
                black_box(&out);
            }
        })
    });
    g.bench_function("4 MiB through ConsoleBuffer::feed, no drawing", |b| {
        b.iter(|| {
            let mut console = ConsoleBuffer::new(58, 200);
            for chunk in stream.chunks(64 * 1024) {
                console.feed(black_box(chunk));
            }
            black_box(console.bytes);
        })
    });
    g.finish();
}

criterion_group!(benches, table_10k, console_throughput);
criterion_main!(benches);
