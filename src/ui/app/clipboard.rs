//! Copy and paste of nodes: the clipboard holds them as TOML, so they paste into another
//! window (or a text editor) too.

use serde::{Deserialize, Serialize};

use super::*;

/// Nodes on the clipboard, as TOML (so they paste into another window too).
#[derive(Serialize, Deserialize)]
pub(super) struct Clip {
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

impl MedallionApp {
    pub(super) fn copy_nodes(&mut self, ids: &[NodeId]) {
        let Some(p) = self.pipeline() else { return };
        let nodes: Vec<Node> = p.nodes.iter().filter(|n| ids.contains(&n.id)).cloned().collect();
        let edges = p
            .edges
            .iter()
            .filter(|e| ids.contains(&e.from) && ids.contains(&e.to))
            .cloned()
            .collect();
        if let Ok(text) = toml::to_string(&Clip { nodes, edges }) {
            self.ctx.copy_text(text);
            self.status = format!("copied {} node(s)", ids.len());
        }
    }

    /// Pastes nodes copied as TOML: fresh ids, shifted positions, inner edges kept.
    pub fn paste(&mut self, text: &str) {
        if let Ok(clip) = toml::from_str::<Clip>(text) {
            self.paste_clip(clip);
        }
    }

    /// A copy of node `id` beside it (the node menu's Duplicate); the clipboard keeps what it
    /// had.
    pub fn duplicate_node(&mut self, id: &NodeId) {
        let nodes: Vec<Node> = (self.pipeline().into_iter())
            .flat_map(|p| p.nodes.iter().filter(|n| &n.id == id).cloned())
            .collect();
        self.paste_clip(Clip { nodes, edges: Vec::new() });
    }

    /// Adds `clip`'s nodes (fresh ids, offset a little) and the edges between them.
    pub(super) fn paste_clip(&mut self, clip: Clip) {
        if clip.nodes.is_empty() || self.pipeline().is_none() {
            return;
        }
        self.before_edit();
        let Some(p) = self.pipeline_mut() else { return };
        let mut renamed = HashMap::new();
        for mut n in clip.nodes {
            let id = p.fresh_id(&n.kind);
            renamed.insert(n.id.clone(), id.clone());
            n.id = id;
            n.pos = Pos { x: n.pos.x + 40.0, y: n.pos.y + 40.0 };
            let _ = p.add_node(n);
        }
        for e in clip.edges {
            if let (Some(f), Some(t)) = (renamed.get(&e.from), renamed.get(&e.to)) {
                let _ = p.connect(f, t, &e.port);
            }
        }
        self.status = format!("pasted {} node(s)", renamed.len());
    }
}
