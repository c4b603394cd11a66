//! AgentCore Memory through the official Rust SDKs (aws-sdk-bedrockagentcorecontrol for the
//! control plane, aws-sdk-bedrockagentcore for the data plane). Their deserializers are strict:
//! a missing required member, a union with two members or a timestamp in the wrong format fails
//! the call, so these tests also hold the output shapes to the model.

mod common;

use std::time::Duration;

use aws_sdk_bedrockagentcore::primitives::DateTime;
use aws_sdk_bedrockagentcore::types as dt;
use aws_sdk_bedrockagentcorecontrol::types as ct;
use aws_smithy_types::Document;
use common::*;

fn semantic(name: &str) -> ct::MemoryStrategyInput {
    ct::MemoryStrategyInput::SemanticMemoryStrategy(
        ct::SemanticMemoryStrategyInput::builder().name(name).namespace_templates("/facts/{actorId}/").build().unwrap(),
    )
}

fn custom_semantic(name: &str, prompt: &str) -> ct::MemoryStrategyInput {
    ct::MemoryStrategyInput::CustomMemoryStrategy(
        ct::CustomMemoryStrategyInput::builder()
            .name(name)
            .configuration(ct::CustomConfigurationInput::SemanticOverride(
                ct::SemanticOverrideConfigurationInput::builder()
                    .extraction(
                        ct::SemanticOverrideExtractionConfigurationInput::builder()
                            .append_to_prompt(prompt)
                            .model_id("anthropic.claude-3-5-haiku-20241022-v1:0")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            ))
            .build()
            .unwrap(),
    )
}

async fn wait_active(client: &aws_sdk_bedrockagentcorecontrol::Client, id: &str) -> ct::Memory {
    for _ in 0..300 {
        let m = client.get_memory().memory_id(id).send().await.unwrap().memory.unwrap();
        if m.status() == &ct::MemoryStatus::Active {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("memory {id} never became ACTIVE");
}

#[tokio::test]
async fn memories_strategies_and_tags_through_the_control_sdk() {
    let server = start().await;
    let client = control(&server);
    let created = client
        .create_memory()
        .name("sdk_memory")
        .description("first")
        .event_expiry_duration(30)
        .memory_strategies(semantic("facts"))
        .memory_strategies(ct::MemoryStrategyInput::SummaryMemoryStrategy(
            ct::SummaryMemoryStrategyInput::builder().name("summaries").build().unwrap(),
        ))
        .memory_strategies(custom_semantic("pets", "Only facts about pets."))
        .tags("team", "memory")
        .client_token("sdk-token-0000000000000000000000001")
        .send()
        .await
        .unwrap()
        .memory
        .unwrap();
    assert_eq!(created.status(), &ct::MemoryStatus::Creating);
    let id = created.id().to_string();
    assert!(id.starts_with("sdk_memory-") && id.len() == "sdk_memory-".len() + 10, "{id}");
    assert_eq!(created.arn(), format!("arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:memory/{id}"));
    assert_eq!(created.event_expiry_duration(), 30);
    assert_eq!(created.strategies().len(), 3);

    let active = wait_active(&client, &id).await;
    let kinds: Vec<&str> = active.strategies().iter().map(|s| s.r#type().as_str()).collect();
    assert_eq!(kinds, ["SEMANTIC", "SUMMARIZATION", "CUSTOM"]);
    assert!(active.strategies().iter().all(|s| s.status() == Some(&ct::MemoryStrategyStatus::Active)));
    assert_eq!(active.strategies()[0].namespace_templates(), ["/facts/{actorId}/"]);
    assert_eq!(
        active.strategies()[1].namespace_templates(),
        ["/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"],
        "a strategy without namespaces gets the default"
    );
    let custom = &active.strategies()[2];
    let config = custom.configuration().unwrap();
    assert_eq!(config.r#type(), Some(&ct::OverrideType::SemanticOverride));
    match config.extraction().unwrap() {
        ct::ExtractionConfiguration::CustomExtractionConfiguration(
            ct::CustomExtractionConfiguration::SemanticExtractionOverride(o),
        ) => assert_eq!(o.append_to_prompt(), "Only facts about pets."),
        other => panic!("{other:?}"),
    }

    // The same clientToken answers with the same memory; another name under it is refused.
    let again = client
        .create_memory()
        .name("sdk_memory")
        .description("first")
        .event_expiry_duration(30)
        .memory_strategies(semantic("facts"))
        .memory_strategies(ct::MemoryStrategyInput::SummaryMemoryStrategy(
            ct::SummaryMemoryStrategyInput::builder().name("summaries").build().unwrap(),
        ))
        .memory_strategies(custom_semantic("pets", "Only facts about pets."))
        .tags("team", "memory")
        .client_token("sdk-token-0000000000000000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(again.memory().unwrap().id(), id);
    let dup = client.create_memory().name("sdk_memory").event_expiry_duration(30).send().await.unwrap_err();
    let dup = dup.into_service_error();
    assert!(dup.is_validation_exception(), "{dup:?}");
    assert!(dup.to_string().contains("already exists"), "{dup}");

    // Strategies: add one, change the custom prompt, remove the summary.
    let summary_id = active.strategies()[1].strategy_id().to_string();
    let updated = client
        .update_memory()
        .memory_id(&id)
        .description("second")
        .memory_strategies(
            ct::ModifyMemoryStrategies::builder()
                .add_memory_strategies(ct::MemoryStrategyInput::UserPreferenceMemoryStrategy(
                    ct::UserPreferenceMemoryStrategyInput::builder().name("prefs").build().unwrap(),
                ))
                .modify_memory_strategies(
                    ct::ModifyMemoryStrategyInput::builder()
                        .memory_strategy_id(custom.strategy_id())
                        .configuration(
                            ct::ModifyStrategyConfiguration::builder()
                                .extraction(ct::ModifyExtractionConfiguration::CustomExtractionConfiguration(
                                    ct::CustomExtractionConfigurationInput::SemanticExtractionOverride(
                                        ct::SemanticOverrideExtractionConfigurationInput::builder()
                                            .append_to_prompt("Only facts about cats.")
                                            .model_id("anthropic.claude-3-5-haiku-20241022-v1:0")
                                            .build()
                                            .unwrap(),
                                    ),
                                ))
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .delete_memory_strategies(
                    ct::DeleteMemoryStrategyInput::builder().memory_strategy_id(&summary_id).build().unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .memory
        .unwrap();
    assert_ne!(updated.status(), &ct::MemoryStatus::Active, "strategy changes settle in the background");
    let active = wait_active(&client, &id).await;
    assert_eq!(active.description(), Some("second"));
    let names: Vec<&str> = active.strategies().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["facts", "pets", "prefs"]);
    match active.strategies()[1].configuration().unwrap().extraction().unwrap() {
        ct::ExtractionConfiguration::CustomExtractionConfiguration(
            ct::CustomExtractionConfiguration::SemanticExtractionOverride(o),
        ) => assert_eq!(o.append_to_prompt(), "Only facts about cats."),
        other => panic!("{other:?}"),
    }

    // A second SEMANTIC strategy breaks the one-of-each-built-in rule.
    let err = client
        .update_memory()
        .memory_id(&id)
        .memory_strategies(ct::ModifyMemoryStrategies::builder().add_memory_strategies(semantic("facts2")).build())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");

    let arn = active.arn().to_string();
    client.tag_resource().resource_arn(&arn).tags("stage", "dev").send().await.unwrap();
    let tags = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    let tags = tags.tags().unwrap();
    assert_eq!((tags["team"].as_str(), tags["stage"].as_str()), ("memory", "dev"));
    client.untag_resource().resource_arn(&arn).tag_keys("team").send().await.unwrap();
    let tags = client.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert!(!tags.tags().unwrap().contains_key("team"));

    let listed = client.list_memories().send().await.unwrap();
    assert_eq!(listed.memories().len(), 1);
    assert_eq!(listed.memories()[0].id(), Some(id.as_str()));

    let deleted = client.delete_memory().memory_id(&id).send().await.unwrap();
    assert_eq!(deleted.status(), Some(&ct::MemoryStatus::Deleting));
    for _ in 0..300 {
        match client.get_memory().memory_id(&id).send().await {
            Ok(m) => assert_eq!(m.memory().unwrap().status(), &ct::MemoryStatus::Deleting),
            Err(e) => {
                assert!(e.into_service_error().is_resource_not_found_exception());
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("memory was never removed");
}

fn conversational(role: dt::Role, text: &str) -> dt::PayloadType {
    dt::PayloadType::Conversational(
        dt::Conversational::builder().content(dt::Content::Text(text.into())).role(role).build().unwrap(),
    )
}

#[tokio::test]
async fn events_records_and_retrieval_through_the_data_sdk() {
    let server = start().await;
    let client = control(&server);
    let data = data_client(&server.url());
    let id = client
        .create_memory()
        .name("sdk_data")
        .event_expiry_duration(7)
        .memory_strategies(semantic("facts"))
        .send()
        .await
        .unwrap()
        .memory
        .unwrap()
        .id
        .clone();
    wait_active(&client, &id).await;

    let first = data
        .create_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_timestamp(DateTime::from_millis(1_764_000_000_123))
        .payload(conversational(dt::Role::User, "I keep bees on my roof."))
        .payload(conversational(dt::Role::Assistant, "How many hives?"))
        .metadata("channel", dt::MetadataValue::StringValue("web".into()))
        .send()
        .await
        .unwrap()
        .event
        .unwrap();
    // Epoch seconds travel as a float: the SDK may read .123 as .122999...
    assert!((first.event_timestamp().to_millis().unwrap() - 1_764_000_000_123).abs() <= 1);
    assert!(first.event_id().starts_with("0000001764000000123#"), "{}", first.event_id());
    let blob = data
        .create_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_timestamp(DateTime::from_millis(1_764_000_001_000))
        .payload(dt::PayloadType::Blob(Document::Object(
            [("state".to_string(), Document::String("saved".into()))].into_iter().collect(),
        )))
        .send()
        .await
        .unwrap()
        .event
        .unwrap();
    let fork = data
        .create_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_timestamp(DateTime::from_millis(1_764_000_002_000))
        .payload(conversational(dt::Role::User, "Actually I keep wasps."))
        .branch(dt::Branch::builder().name("alt").root_event_id(first.event_id()).build().unwrap())
        .send()
        .await
        .unwrap()
        .event
        .unwrap();
    assert_eq!(fork.branch().unwrap().root_event_id(), Some(first.event_id()));

    let listed = data.list_events().memory_id(&id).actor_id("alice").session_id("s1").send().await.unwrap();
    let order: Vec<&str> = listed.events().iter().map(|e| e.event_id()).collect();
    assert_eq!(order, [fork.event_id(), blob.event_id(), first.event_id()], "newest first");
    match &listed.events()[1].payload()[0] {
        dt::PayloadType::Blob(Document::Object(o)) => assert_eq!(o["state"], Document::String("saved".into())),
        other => panic!("{other:?}"),
    }
    let alt = data
        .list_events()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .filter(
            dt::FilterInput::builder()
                .branch(dt::BranchFilter::builder().name("alt").include_parent_branches(true).build().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let alt: Vec<&str> = alt.events().iter().map(|e| e.event_id()).collect();
    assert_eq!(alt, [fork.event_id(), first.event_id()], "the branch and its parent up to the root");
    let by_channel = data
        .list_events()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .filter(
            dt::FilterInput::builder()
                .event_metadata(
                    dt::EventMetadataFilterExpression::builder()
                        .left(dt::LeftExpression::MetadataKey("channel".into()))
                        .operator(dt::OperatorType::EqualsTo)
                        .right(dt::RightExpression::MetadataValue(dt::MetadataValue::StringValue("web".into())))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_channel.events().len(), 1);

    let got = data
        .get_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_id(first.event_id())
        .send()
        .await
        .unwrap();
    assert_eq!(got.event().unwrap().metadata().unwrap()["channel"], dt::MetadataValue::StringValue("web".into()));
    let sessions = data.list_sessions().memory_id(&id).actor_id("alice").send().await.unwrap();
    assert_eq!(sessions.session_summaries()[0].session_id(), "s1");
    let actors = data.list_actors().memory_id(&id).send().await.unwrap();
    assert_eq!(actors.actor_summaries()[0].actor_id(), "alice");

    // The semantic strategy turns the user's statement into a record, a moment later.
    let mut records = Vec::new();
    for _ in 0..300 {
        let page = data.list_memory_records().memory_id(&id).namespace("/facts/alice/").send().await.unwrap();
        records = page.memory_record_summaries().to_vec();
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts: Vec<String> = records
        .iter()
        .map(|r| match r.content().unwrap() {
            dt::MemoryContent::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(texts.contains(&"I keep bees on my roof.".to_string()), "{texts:?}");

    let created = data
        .batch_create_memory_records()
        .memory_id(&id)
        .records(
            dt::MemoryRecordCreateInput::builder()
                .request_identifier("r1")
                .namespaces("/facts/alice/")
                .content(dt::MemoryContent::Text("Alice's car is a green tram.".into()))
                .timestamp(DateTime::from_secs(1_764_000_100))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.successful_records().len(), 1);
    let record_id = created.successful_records()[0].memory_record_id().to_string();
    let hits = data
        .retrieve_memory_records()
        .memory_id(&id)
        .namespace("/facts/alice/")
        .search_criteria(
            dt::SearchCriteria::builder().search_query("what car does alice drive").top_k(3).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    let top = &hits.memory_record_summaries()[0];
    assert_eq!(top.memory_record_id(), record_id);
    assert!(top.score().unwrap() > 0.0 && top.score().unwrap() < 1.0, "{:?}", top.score());

    let updated = data
        .batch_update_memory_records()
        .memory_id(&id)
        .records(
            dt::MemoryRecordUpdateInput::builder()
                .memory_record_id(&record_id)
                .timestamp(DateTime::from_secs(1_764_000_200))
                .content(dt::MemoryContent::Text("Alice's car is a red bus.".into()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(updated.successful_records().len(), 1);
    let record = data.get_memory_record().memory_id(&id).memory_record_id(&record_id).send().await.unwrap();
    assert_eq!(
        record.memory_record().unwrap().content(),
        Some(&dt::MemoryContent::Text("Alice's car is a red bus.".into()))
    );
    let deleted = data
        .batch_delete_memory_records()
        .memory_id(&id)
        .records(dt::MemoryRecordDeleteInput::builder().memory_record_id(&record_id).build().unwrap())
        .records(
            dt::MemoryRecordDeleteInput::builder().memory_record_id(format!("mem-{}", "0".repeat(36))).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!((deleted.successful_records().len(), deleted.failed_records().len()), (1, 1));
    let err = data.get_memory_record().memory_id(&id).memory_record_id(&record_id).send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    let jobs = data.list_memory_extraction_jobs().memory_id(&id).send().await.unwrap();
    assert!(jobs.jobs().is_empty());
    let err = data
        .start_memory_extraction_job()
        .memory_id(&id)
        .extraction_job(dt::ExtractionJob::builder().job_id("job-missing").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    let gone = data
        .delete_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_id(blob.event_id())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.event_id(), blob.event_id());
    let err =
        data.delete_event().memory_id(&id).actor_id("alice").session_id("s1").event_id(blob.event_id()).send().await;
    assert!(err.unwrap_err().into_service_error().is_resource_not_found_exception());
}

/// A model that fails until told otherwise and records what it was asked.
struct FlakyModel {
    failing: std::sync::atomic::AtomicBool,
    seen: std::sync::Mutex<Vec<(String, String)>>,
}

impl agentcore_local::services::memory::MemoryModel for FlakyModel {
    fn complete<'a>(
        &'a self,
        request: agentcore_local::services::memory::ModelRequest<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<String, String>> {
        self.seen.lock().unwrap().push((request.model_id.to_string(), request.system.to_string()));
        let failing = self.failing.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if failing {
                Err("ThrottlingException: too many tokens".to_string())
            } else {
                Ok("Rex is the user's dog".to_string())
            }
        })
    }
}

#[tokio::test]
async fn a_failed_extraction_is_a_job_that_starts_again_with_the_override_prompt() {
    let server = start().await;
    let client = control(&server);
    let data = data_client(&server.url());
    let model = std::sync::Arc::new(FlakyModel { failing: true.into(), seen: Default::default() });
    server.state.memory.set_model(Some(model.clone()));
    let id = client
        .create_memory()
        .name("sdk_jobs")
        .event_expiry_duration(7)
        .memory_strategies(ct::MemoryStrategyInput::CustomMemoryStrategy(
            ct::CustomMemoryStrategyInput::builder()
                .name("pets")
                .namespace_templates("/pets/{actorId}/")
                .configuration(ct::CustomConfigurationInput::SemanticOverride(
                    ct::SemanticOverrideConfigurationInput::builder()
                        .extraction(
                            ct::SemanticOverrideExtractionConfigurationInput::builder()
                                .append_to_prompt("Only facts about pets.")
                                .model_id("pet-model")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                ))
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .memory
        .unwrap()
        .id
        .clone();
    let memory = wait_active(&client, &id).await;
    let strategy_id = memory.strategies()[0].strategy_id().to_string();
    let event = data
        .create_event()
        .memory_id(&id)
        .actor_id("alice")
        .session_id("s1")
        .event_timestamp(DateTime::from_secs(1_764_000_000))
        .payload(conversational(dt::Role::User, "I have a dog named Rex."))
        .send()
        .await
        .unwrap()
        .event
        .unwrap();

    let mut jobs = Vec::new();
    for _ in 0..300 {
        jobs = data.list_memory_extraction_jobs().memory_id(&id).send().await.unwrap().jobs().to_vec();
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let [job] = jobs.as_slice() else { panic!("one failed job expected: {jobs:?}") };
    assert_eq!(job.status(), Some(&dt::ExtractionJobStatus::Failed));
    assert_eq!(
        (job.strategy_id(), job.actor_id(), job.session_id()),
        (Some(strategy_id.as_str()), Some("alice"), Some("s1"))
    );
    assert!(job.failure_reason().unwrap().contains("pet-model"), "{:?}", job.failure_reason());
    match job.messages() {
        Some(dt::ExtractionJobMessages::MessagesList(list)) => {
            assert_eq!((list[0].event_id(), list[0].message_index()), (event.event_id(), 0))
        }
        other => panic!("{other:?}"),
    }
    let filtered = data
        .list_memory_extraction_jobs()
        .memory_id(&id)
        .filter(dt::ExtractionJobFilterInput::builder().actor_id("bob").build())
        .send()
        .await
        .unwrap();
    assert!(filtered.jobs().is_empty());

    model.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let started = data
        .start_memory_extraction_job()
        .memory_id(&id)
        .extraction_job(dt::ExtractionJob::builder().job_id(job.job_id()).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(started.job_id(), job.job_id());
    let mut records = Vec::new();
    for _ in 0..300 {
        records = data
            .list_memory_records()
            .memory_id(&id)
            .namespace("/pets/alice/")
            .send()
            .await
            .unwrap()
            .memory_record_summaries()
            .to_vec();
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(records[0].content(), Some(&dt::MemoryContent::Text("Rex is the user's dog".into())));
    assert!(data.list_memory_extraction_jobs().memory_id(&id).send().await.unwrap().jobs().is_empty());
    let seen = model.seen.lock().unwrap();
    let (model_id, system) = seen.last().unwrap();
    assert_eq!(model_id, "pet-model");
    assert!(system.ends_with("Only facts about pets."), "{system}");
}
