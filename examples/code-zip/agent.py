"""A minimal agent for direct code deployment, written with the bedrock-agentcore SDK."""
from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"reply": f"you said: {payload.get('prompt', '')}", "session": context.session_id}


if __name__ == "__main__":
    app.run()
