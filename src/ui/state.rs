//! What the designer edits, apart from how it is drawn: the open project, its file, whether it
//! has unsaved changes, and the undo/redo history. No egui types here.

use std::path::PathBuf;

use crate::model::Project;

/// Undo/redo by snapshots: projects are small, and a snapshot cannot miss a field.
#[derive(Debug, Default)]
pub struct History {
    undo: Vec<Project>,
    redo: Vec<Project>,
}

const MAX_UNDO: usize = 200;

impl History {
    /// Call before changing `current`: remembers it for undo and clears redo.
    pub fn record(&mut self, current: &Project) {
        if self.undo.last() == Some(current) {
            return;
        }
        self.undo.push(current.clone());
        if self.undo.len() > MAX_UNDO {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    pub fn undo(&mut self, current: &mut Project) -> bool {
        match self.undo.pop() {
            Some(prev) => {
                self.redo.push(std::mem::replace(current, prev));
                true
            }
            None => false,
        }
    }

    pub fn redo(&mut self, current: &mut Project) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(std::mem::replace(current, next));
                true
            }
            None => false,
        }
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
    }
}

/// The open project and its file.
#[derive(Debug, Default)]
pub struct Document {
    pub project: Project,
    pub path: Option<PathBuf>,
    /// The project as last loaded or saved; unsaved changes are a difference from it.
    pub saved: Project,
    /// `--lakehouse` override (the demo's data directory), else the project's own setting.
    pub lakehouse_override: Option<PathBuf>,
}

impl Document {
    pub fn new(project: Project, path: Option<PathBuf>) -> Self {
        Self { saved: project.clone(), project, path, lakehouse_override: None }
    }

    pub fn dirty(&self) -> bool {
        self.project != self.saved
    }

    pub fn title(&self) -> String {
        let name = self
            .path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "untitled".into());
        format!("{}{name} — Medallion", if self.dirty() { "* " } else { "" })
    }

    /// The lakehouse root that relative table paths resolve against.
    pub fn lakehouse_root(&self) -> PathBuf {
        let root = match (&self.lakehouse_override, &self.path) {
            (Some(dir), _) => dir.clone(),
            (None, Some(path)) => self.project.lakehouse_root(path, None),
            (None, None) => PathBuf::from(&self.project.lakehouse),
        };
        // `demo/./_events` reads badly in the panels: drop the `.` components
        root.components().collect()
    }

    pub fn mark_saved(&mut self, path: PathBuf) {
        self.path = Some(path);
        self.saved = self.project.clone();
    }
}

/// Recently opened project files, newest first.
pub fn push_recent(recent: &mut Vec<PathBuf>, path: PathBuf) {
    recent.retain(|p| p != &path);
    recent.insert(0, path);
    recent.truncate(10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_redo_round_trip() {
        let mut h = History::default();
        let mut p = Project::new("a");
        h.record(&p);
        p.name = "b".into();
        h.record(&p);
        p.name = "c".into();
        assert!(h.undo(&mut p));
        assert_eq!(p.name, "b");
        assert!(h.undo(&mut p));
        assert_eq!(p.name, "a");
        assert!(!h.undo(&mut p));
        assert!(h.redo(&mut p));
        assert_eq!(p.name, "b");
        h.record(&p);
        assert!(!h.can_redo(), "a new edit clears redo");
    }
}
