//! Queries that stop when they are cancelled. DataFusion's tasks give way to the runtime (and
//! so notice they were aborted) where a scan hands over a batch; a join that makes millions of
//! rows from a few scanned ones (a cross join, a join on a low-cardinality key) never gets
//! there, and an aggregate above it computes to the end before a cancel or a statement timeout
//! takes effect. This rule makes every join's output give way too.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};

/// Wraps the output of every join in a [`CooperativeExec`], which spends the task's
/// cooperative budget per batch and yields when it runs out.
#[derive(Debug, Default)]
pub struct YieldingJoins;

fn is_join(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<NestedLoopJoinExec>()
        || plan.is::<CrossJoinExec>()
        || plan.is::<HashJoinExec>()
        || plan.is::<SortMergeJoinExec>()
        || plan.is::<SymmetricHashJoinExec>()
}

impl PhysicalOptimizerRule for YieldingJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if is_join(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldingJoins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn every_join_output_is_wrapped_once() {
        let ctx = SessionContext::new();
        let sql = "SELECT count(*) FROM (VALUES (1),(2)) a(x), (VALUES (3)) b(y), \
                   (VALUES (1)) c(z) WHERE a.x = c.z";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let plan = YieldingJoins.optimize(plan, &ConfigOptions::default()).unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(false).to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let joins = lines.iter().filter(|l| l.contains("JoinExec")).count();
        assert!(joins >= 2, "{text}");
        for (i, line) in lines.iter().enumerate() {
            if line.contains("JoinExec") {
                assert!(i > 0 && lines[i - 1].starts_with("CooperativeExec"), "{text}");
            }
        }
    }
}
