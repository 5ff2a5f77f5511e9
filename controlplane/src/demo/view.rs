//! The live view (ratatui on crossterm): the pool, a table of its nodes, and the latest
//! changes. `q`, Esc or Ctrl-C quits (raw mode turns Ctrl-C into a key).

use std::io::IsTerminal;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::DefaultTerminal;

use super::fleet::{Phase, Snapshot};
use super::setup::POOL;

/// Whether stdout is a terminal the live view can draw on.
pub fn is_terminal() -> bool {
    std::io::stdout().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb")
}

/// The terminal in the live view's mode; restored when dropped.
pub struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    /// Raw mode and the alternate screen (ratatui's `try_init`, which also restores the
    /// terminal on a panic).
    pub fn open() -> std::io::Result<Screen> {
        Ok(Screen {
            terminal: ratatui::try_init()?,
        })
    }

    /// Whether `q`, Esc or Ctrl-C was pressed since the last look (does not wait).
    pub fn quit_pressed(&mut self) -> bool {
        while event::poll(Duration::ZERO).unwrap_or(false) {
            if let Ok(Event::Key(k)) = event::read() {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if k.kind == KeyEventKind::Press
                    && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                {
                    return true;
                }
            }
        }
        false
    }

    /// Draws one frame. A failed draw is skipped: the next one tries again.
    pub fn draw(&mut self, base: &str, now: &Snapshot, phase: &Phase, log: &[String]) {
        let _ = self.terminal.draw(|f| {
            let [top, table, bottom] = Layout::vertical([
                Constraint::Length(4),
                Constraint::Min(6),
                Constraint::Length(12),
            ])
            .areas(f.area());
            let head = vec![
                Line::from(format!(
                    "pool {POOL}: {} nodes, target {}, {} serving, {} instances in flight, status {}{}",
                    now.pool_nodes,
                    now.target,
                    now.serving().len(),
                    now.in_flight(),
                    now.pool_status,
                    if now.pool_error.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", now.pool_error)
                    }
                )),
                Line::from(phase.describe()).style(Style::new().add_modifier(Modifier::BOLD)),
            ];
            f.render_widget(
                Paragraph::new(head).block(
                    Block::new()
                        .borders(Borders::ALL)
                        .title(format!(" gpuwarden demo — {base} — q quits ")),
                ),
                top,
            );
            let rows = now.nodes.values().map(|n| {
                let colour = match n.health.as_str() {
                    "healthy" => Color::Green,
                    "degraded" => Color::Yellow,
                    "unhealthy" => Color::Red,
                    _ => Color::Gray,
                };
                let held = n.held.as_deref().map(|h| format!("held: {h}"));
                Row::new(vec![
                    Cell::from(n.name.clone()),
                    Cell::from(n.status.clone()),
                    Cell::from(n.health.clone()).style(Style::new().fg(colour)),
                    Cell::from(n.connectivity.clone()),
                    Cell::from(n.gpus.to_string()),
                    Cell::from(held.unwrap_or_else(|| n.reason.clone())),
                ])
            });
            let widths = [
                Constraint::Length(22),
                Constraint::Length(11),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Min(20),
            ];
            let header = Row::new(["NODE", "LIFECYCLE", "HEALTH", "CONN", "GPUS", "WHY"])
                .style(Style::new().add_modifier(Modifier::BOLD));
            f.render_widget(
                Table::new(rows, widths)
                    .header(header)
                    .block(Block::new().borders(Borders::ALL).title(" nodes ")),
                table,
            );
            let shown = bottom.height.saturating_sub(2) as usize;
            let tail: Vec<Line> = log
                .iter()
                .skip(log.len().saturating_sub(shown))
                .map(|l| Line::from(l.as_str()))
                .collect();
            f.render_widget(
                Paragraph::new(tail)
                    .wrap(Wrap { trim: false })
                    .block(Block::new().borders(Borders::ALL).title(" changes ")),
                bottom,
            );
        });
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
