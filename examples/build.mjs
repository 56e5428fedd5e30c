console.log("examples: nothing to build yet")
