//! The API handler with the in-memory queue: the cost of the function's own work per
//! request (validation, K, the command's JSON, the answer), without any network.

use criterion::{Criterion, criterion_group, criterion_main};
use refund_shared::queue::InMemoryQueue;

fn handler(c: &mut Criterion) {
    let fixture = include_str!("../../events/api-refund.json");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ticket = "5f4b8a0e-8a4e-4a55-9f0f-3c1f6a8a1b2c"
        .parse()
        .expect("ticket");
    c.bench_function("api_handler_in_memory_queue", |b| {
        b.iter_batched(
            || {
                (
                    InMemoryQueue::new(),
                    refund_bench::api_overhead::request(fixture, &ticket).expect("request"),
                )
            },
            |(queue, request)| {
                runtime.block_on(async {
                    let response = refund_api::handler::handle(
                        &queue,
                        refund_api::NO_RECORDS,
                        &refund_shared::config::AccessConfig::default(),
                        request,
                    )
                    .await;
                    assert!(matches!(response, Ok(r) if r.status() == 202));
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, handler);
criterion_main!(benches);
