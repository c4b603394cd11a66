"""A Strands agent written exactly as for AgentCore on AWS: the default BedrockModel() and one tool.
Nothing here names an endpoint, a model or credentials: the session's environment provides them."""
from bedrock_agentcore.runtime import BedrockAgentCoreApp
from strands import Agent, tool
from strands.models import BedrockModel


@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    agent = Agent(model=BedrockModel(), tools=[word_count], callback_handler=None)
    result = agent(payload["prompt"])
    return {"answer": str(result).strip(), "tool_calls": {n: m.call_count for n, m in result.metrics.tool_metrics.items()}}


if __name__ == "__main__":
    app.run()
