"""Run by test_memory.py with Strands on PYTHONPATH and AWS_ENDPOINT_URL at the emulator: two Strands
agents of one actor with AgentCoreMemorySessionManager, a scripted model (no network, no
credentials), and what the second session's model was sent. Prints one JSON line."""
import json
import os
import time

from bedrock_agentcore.memory import MemoryClient
from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig, RetrievalConfig
from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager
from strands import Agent
from strands.models.model import Model

MEMORY_ID = os.environ["MEMORY_ID"]
REGION = os.environ["AWS_REGION"]


class ScriptedModel(Model):
    """Answers "Noted." and keeps every message list it was sent."""

    def __init__(self):
        self.seen = []

    def update_config(self, **model_config):
        pass

    def get_config(self):
        return {}

    async def structured_output(self, output_model, prompt, system_prompt=None, **kwargs):
        raise NotImplementedError
        yield  # pragma: no cover

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):
        self.seen.append(json.loads(json.dumps(messages, default=str)))
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "Noted."}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


def agent(session_id, model):
    config = AgentCoreMemoryConfig(memory_id=MEMORY_ID, actor_id="zed", session_id=session_id,
                                   retrieval_config={"/facts/{actorId}/": RetrievalConfig(top_k=5)})
    return Agent(model=model, session_manager=AgentCoreMemorySessionManager(config, region_name=REGION),
                 callback_handler=None)


first = agent("first-session-0000000000000000000000000001", ScriptedModel())
first("My favourite mountain is Aconcagua.")

# Extraction is asynchronous: wait until the fact can be retrieved.
client = MemoryClient(region_name=REGION)
deadline = time.time() + 15
while not client.retrieve_memories(MEMORY_ID, namespace="/facts/zed/", query="mountain"):
    assert time.time() < deadline, "the fact was never extracted"
    time.sleep(0.1)

second_model = ScriptedModel()
agent("second-session-000000000000000000000000002", second_model)("Which mountain do I like best?")

again = agent("first-session-0000000000000000000000000001", ScriptedModel())
restored = [block.get("text") for message in again.messages for block in message["content"]]
print(json.dumps({"second_session_sent": json.dumps(second_model.seen[-1]), "restored": restored}))
